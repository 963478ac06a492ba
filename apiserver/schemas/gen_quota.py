#!/usr/bin/env python3
"""Generates apiserver/schemas/quota.inc (see its header): gen_storage.py's
method for v1 PodTemplate, LimitRange and ResourceQuota.

Usage: gen_quota.py > quota.inc   (needs python3-kubernetes installed)
"""
import re, json, importlib, sys, os
sys.path.insert(0, '/usr/lib/python3/dist-packages')
M = 'kubernetes.client.models.'
CORE = 'io.k8s.api.core.v1.'
STOR = 'io.k8s.api.storage.v1.'
META = 'io.k8s.apimachinery.pkg.apis.meta.v1.'
QTY = 'io.k8s.apimachinery.pkg.api.resource.Quantity'
here = os.path.dirname(os.path.abspath(__file__))
existing = set()
for f in ('definitions.inc', 'storage.inc'):
    existing |= set(re.findall(r'^"([^"]+)":', open(os.path.join(here, f)).read(), re.M))
STORAGE_TYPES = set()
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
KINDS = ['PodTemplate', 'PodTemplateList', 'LimitRange', 'LimitRangeList', 'ResourceQuota',
         'ResourceQuotaList']
todo = ['V1' + k for k in KINDS]
def typ(t, field):
    m = re.match(r'list\[(.*)\]$', t)
    if m: return {'type': 'array', 'items': typ(m.group(1), field)}
    m = re.match(r'dict\(str, (.*)\)$', t)
    if m:
        if field in ('default', 'defaultRequest', 'max', 'min', 'maxLimitRequestRatio', 'hard', 'used'):
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
for k in KINDS:
    out[CORE + k]['x-kubernetes-group-version-kind'] = [{'group': '', 'kind': k, 'version': 'v1'}]
descs = {
 CORE + 'PodTemplate': 'PodTemplate describes a template for creating copies of a predefined pod.',
 CORE + 'PodTemplateList': 'PodTemplateList is a list of PodTemplates.',
 CORE + 'LimitRange': 'LimitRange sets resource usage limits for each kind of resource in a Namespace.',
 CORE + 'LimitRangeList': 'LimitRangeList is a list of LimitRange items.',
 CORE + 'LimitRangeSpec': 'LimitRangeSpec defines a min/max usage limit for resources that match on kind.',
 CORE + 'LimitRangeItem': 'LimitRangeItem defines a min/max usage limit for any resource that matches on kind.',
 CORE + 'ResourceQuota': 'ResourceQuota sets aggregate quota restrictions enforced per namespace',
 CORE + 'ResourceQuotaList': 'ResourceQuotaList is a list of ResourceQuota items.',
 CORE + 'ResourceQuotaSpec': 'ResourceQuotaSpec defines the desired hard limits to enforce for Quota.',
 CORE + 'ResourceQuotaStatus': 'ResourceQuotaStatus defines the enforced hard limits and observed use.',
 CORE + 'ScopeSelector': 'A scope selector represents the AND of the selectors represented by the scoped-resource selector requirements.',
 CORE + 'ScopedResourceSelectorRequirement': 'A scoped-resource selector requirement is a selector that contains values, a scope name, and an operator that relates the scope name and values.',
}
for k, v in descs.items():
    if k in out: out[k]['description'] = v
for name in out:
    if name.endswith('List'):
        out[name]['required'] = ['items']
sys.stdout.write('// The OpenAPI (v2-style) definitions of v1 PodTemplate, LimitRange and\n// ResourceQuota with their lists and the types only they use: generated by\n// gen_quota.py from the fields and descriptions of the Kubernetes Python\n// client\'s models (Debian python3-kubernetes); merged into\n// definitions.inc\'s by openapi.cc.\nR"kinjson(')
sys.stdout.write(json.dumps(out, indent=0, sort_keys=True))
sys.stdout.write(')kinjson"\n')
