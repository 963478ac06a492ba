#!/usr/bin/env python3
"""Generates apiserver/schemas/storage.inc (see its header).

Usage: gen_storage.py > storage.inc   (needs python3-kubernetes installed)
"""
import re, json, importlib, sys, os
sys.path.insert(0, '/usr/lib/python3/dist-packages')
M = 'kubernetes.client.models.'
CORE = 'io.k8s.api.core.v1.'
STOR = 'io.k8s.api.storage.v1.'
META = 'io.k8s.apimachinery.pkg.apis.meta.v1.'
QTY = 'io.k8s.apimachinery.pkg.api.resource.Quantity'
existing = set(re.findall(r'^"([^"]+)":', open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'definitions.inc')).read(), re.M))
STORAGE_TYPES = {'V1StorageClass', 'V1StorageClassList'}
def defname(cls):
    base = cls[2:]
    if cls in ('V1ObjectMeta', 'V1ListMeta'): return META + base
    if cls in STORAGE_TYPES: return STOR + base
    return CORE + base
def mod(cls):
    return re.sub(r'(?<!^)(?=[A-Z])', '_', cls).lower().replace('v1_', 'v1_', 1)
out = {}
import glob, os
CLASSFILE = {}
for f in glob.glob('/usr/lib/python3/dist-packages/kubernetes/client/models/*.py'):
    for c in re.findall(r'^class (\w+)\(object\)', open(f).read(), re.M):
        CLASSFILE[c] = os.path.basename(f)[:-3]
todo = ['V1PersistentVolume', 'V1PersistentVolumeList', 'V1PersistentVolumeClaimList',
        'V1StorageClass', 'V1StorageClassList']
def typ(t, field):
    m = re.match(r'list\[(.*)\]$', t)
    if m: return {'type': 'array', 'items': typ(m.group(1), field)}
    m = re.match(r'dict\(str, (.*)\)$', t)
    if m:
        if field in ('capacity', 'requests', 'limits', 'allocatedResources'):
            return {'type': 'object', 'additionalProperties': {'$ref': QTY}}
        return {'type': 'object', 'additionalProperties': typ(m.group(1), field)}
    if t == 'str': return {'type': 'string'}
    if t == 'int': return {'type': 'integer', 'format': 'int32'}
    if t == 'bool': return {'type': 'boolean'}
    if t == 'datetime': return {'$ref': META + 'Time'}
    if t == 'object': return {'type': 'object'}
    name = defname(t)
    if name not in existing and name not in out and t not in todo: todo.append(t)
    return {'$ref': name}
while todo:
    cls = todo.pop(0)
    name = defname(cls)
    if name in existing or name in out: continue
    fname = CLASSFILE[cls]
    m = importlib.import_module(M + fname)
    C = getattr(m, cls)
    src = open(m.__file__).read()
    doc = (C.__doc__ or '').strip()
    d = {'type': 'object', 'properties': {}}
    cdoc = re.search(r'"""\s*(.*?)\s*"""', src[src.index('class '+cls):], re.S)
    desc = None
    required = []
    for attr, t in C.openapi_types.items():
        key = C.attribute_map[attr]
        p = typ(t, key)
        g = re.search(r'def %s\(self\):\s*"""Gets the %s of this %s\.\s*# noqa: E501\s*(.*?)\s*:return:' % (attr, attr, cls), src, re.S)
        if g:
            text = re.sub(r'\s*# noqa: E501', '', g.group(1)).strip()
            if text: p['description'] = text
        if re.search(r'and %s is None:  # noqa: E501\s*raise ValueError' % attr, src):
            required.append(key)
        d['properties'][key] = p
    # the class docstring's first paragraph
    cm = re.search(r'class %s\(object\):\s*"""(.*?)"""' % cls, src, re.S)
    if required: d['required'] = required
    out[name] = d
gvk = {'PersistentVolume': ('', 'PersistentVolume'), 'PersistentVolumeList': ('', 'PersistentVolumeList'),
       'PersistentVolumeClaimList': ('', 'PersistentVolumeClaimList'),
       'StorageClass': ('storage.k8s.io', 'StorageClass'), 'StorageClassList': ('storage.k8s.io', 'StorageClassList')}
for name, d in out.items():
    short = name.rsplit('.', 1)[1]
    if short in gvk and (short.startswith('Storage') == name.startswith(STOR)):
        g, k = gvk[short]
        d['x-kubernetes-group-version-kind'] = [{'group': g, 'kind': k, 'version': 'v1'}]
# 1.33 fields the 1.22 client lacks.
pvs = out[CORE + 'PersistentVolumeSpec']['properties']
pvs['volumeAttributesClassName'] = {'type': 'string', 'description': 'Name of VolumeAttributesClass to which this persistent volume belongs.'}
out[CORE + 'PersistentVolumeStatus']['properties']['lastPhaseTransitionTime'] = {'$ref': META + 'Time', 'description': 'lastPhaseTransitionTime is the time the phase transitioned from one to another and automatically resets to current time everytime a volume phase transitions.'}
descs = {
 CORE + 'PersistentVolume': 'PersistentVolume (PV) is a storage resource provisioned by an administrator. It is analogous to a node. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes',
 CORE + 'PersistentVolumeList': 'PersistentVolumeList is a list of PersistentVolume items.',
 CORE + 'PersistentVolumeClaimList': 'PersistentVolumeClaimList is a list of PersistentVolumeClaim items.',
 STOR + 'StorageClass': 'StorageClass describes the parameters for a class of storage for which PersistentVolumes can be dynamically provisioned.\n\nStorageClasses are non-namespaced; the name of the storage class according to etcd is in ObjectMeta.Name.',
 STOR + 'StorageClassList': 'StorageClassList is a collection of storage classes.',
 CORE + 'PersistentVolumeSpec': 'PersistentVolumeSpec is the specification of a persistent volume.',
 CORE + 'PersistentVolumeStatus': 'PersistentVolumeStatus is the current status of a persistent volume.',
 CORE + 'VolumeNodeAffinity': 'VolumeNodeAffinity defines constraints that limit what nodes this volume can be accessed from.',
 CORE + 'LocalVolumeSource': 'Local represents directly-attached storage with node affinity',
}
for k, v in descs.items():
    if k in out: out[k]['description'] = v
for name in out:
    if name.endswith('List'):
        out[name]['required'] = ['items']
sys.stdout.write('// The OpenAPI (v2-style) definitions of PersistentVolume, the\n// PersistentVolumeClaim list and storage.k8s.io/v1 StorageClass with the\n// types only they use (the npm packages gen_definitions.py reads were not at\n// hand): generated by gen_storage.py from the fields and descriptions of the\n// Kubernetes Python client\'s models (Debian python3-kubernetes), with the\n// fields added since, up to 1.33, by hand; merged into definitions.inc\'s by\n// openapi.cc.\nR"kinjson(')
sys.stdout.write(json.dumps(out, indent=0, sort_keys=True))
sys.stdout.write(')kinjson"\n')
