#!/usr/bin/env python3
"""Generates apiserver/schemas/definitions.inc: the OpenAPI definitions of the
kinds kin serves and every type they use, in the compact form openapi.cc reads.

Inputs (unpacked npm tarballs; `npm pack NAME@VERSION` then `tar xzf`):
  kubernetes-models@4.5.1 (the Kubernetes 1.33 API) and
  @kubernetes-models/apimachinery@2.2.0
      field names, types, required fields, enums and descriptions
      (TypeScript declarations generated from the Kubernetes OpenAPI spec);
  @kubernetes/client-node@2.0.1
      integer/number formats (int32, int64, double) of each field.
Kubernetes' x-kubernetes-* extensions are not in those packages: they come from
the tables below (LISTS, FIELD_STRATEGY, BYTE_MAPS, ATOMIC_MAPS,
ATOMIC_STRUCTS), transcribed from the struct tags and +listType / +structType
markers of k8s.io/api and k8s.io/apimachinery.

Usage: gen_definitions.py KM_DIR AM_DIR CN_DIR OUT
"""
import json, os, re, sys

KM, AM, CN, OUT = sys.argv[1:5]

# Folder in the npm packages -> OpenAPI definition-name prefix.
PACKAGES = [
    (KM, 'v1', 'io.k8s.api.core.v1'),
    (KM, 'apps/v1', 'io.k8s.api.apps.v1'),
    (KM, 'batch/v1', 'io.k8s.api.batch.v1'),
    (KM, 'autoscaling/v1', 'io.k8s.api.autoscaling.v1'),
    (KM, 'discovery.k8s.io/v1', 'io.k8s.api.discovery.v1'),
    (KM, 'networking.k8s.io/v1', 'io.k8s.api.networking.v1'),
    (KM, 'coordination.k8s.io/v1', 'io.k8s.api.coordination.v1'),
    (KM, 'policy/v1', 'io.k8s.api.policy.v1'),
    (AM, 'apis/meta/v1', 'io.k8s.apimachinery.pkg.apis.meta.v1'),
    (AM, 'api/resource', 'io.k8s.apimachinery.pkg.api.resource'),
    (AM, 'util/intstr', 'io.k8s.apimachinery.pkg.util.intstr'),
    (AM, 'runtime', 'io.k8s.apimachinery.pkg.runtime'),
]

ROOTS = [
    'io.k8s.api.core.v1.' + k for k in
    ['Namespace', 'Node', 'Pod', 'Service', 'Endpoints', 'ConfigMap', 'Secret', 'Event',
     'ServiceAccount']
] + ['io.k8s.api.apps.v1.' + k for k in ['Deployment', 'ReplicaSet', 'DaemonSet', 'StatefulSet']] + [
    'io.k8s.api.batch.v1.Job', 'io.k8s.api.discovery.v1.EndpointSlice',
    'io.k8s.api.networking.v1.Ingress', 'io.k8s.api.networking.v1.IngressClass',
    'io.k8s.api.networking.v1.NetworkPolicy', 'io.k8s.api.coordination.v1.Lease',
    'io.k8s.api.autoscaling.v1.Scale',
    'io.k8s.apimachinery.pkg.apis.meta.v1.Status',
    'io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions',
    'io.k8s.apimachinery.pkg.apis.meta.v1.Patch',
    'io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent',
]
ROOTS += [r + 'List' for r in ROOTS[:19]]
# Kinds served since the controllers came (issue 11), with their lists.
LATER_KINDS = ['io.k8s.api.core.v1.ReplicationController', 'io.k8s.api.apps.v1.ControllerRevision',
               'io.k8s.api.batch.v1.CronJob', 'io.k8s.api.policy.v1.PodDisruptionBudget']
ROOTS += LATER_KINDS + [r + 'List' for r in LATER_KINDS] + ['io.k8s.api.policy.v1.Eviction']

# Types the packages declare as TypeScript aliases: written by hand, as upstream
# has them (v2 form; openapi.cc derives the v3 form of Quantity and IntOrString).
PRIMITIVES = {
    'io.k8s.apimachinery.pkg.apis.meta.v1.Time': {
        'type': 'string', 'format': 'date-time',
        'description': 'Time is a wrapper around time.Time which supports correct marshaling to YAML and JSON.  Wrappers are provided for many of the factory methods that the time package offers.'},
    'io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime': {
        'type': 'string', 'format': 'date-time',
        'description': 'MicroTime is version of Time with microsecond level precision.'},
    'io.k8s.apimachinery.pkg.api.resource.Quantity': {
        'type': 'string',
        'description': 'Quantity is a fixed-point representation of a number. It provides convenient marshaling/unmarshaling in JSON and YAML, in addition to String() and AsInt64() accessors.\n\nThe serialization format is:\n\n``` <quantity>        ::= <signedNumber><suffix>\n\n\t(Note that <suffix> may be empty, from the "" case in <decimalSI>.)\n\n<digit>           ::= 0 | 1 | ... | 9 <digits>          ::= <digit> | <digit><digits> <number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits> <sign>            ::= "+" | "-" <signedNumber>    ::= <number> | <sign><number> <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI> <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei\n\n\t(International System of units; See: http://physics.nist.gov/cuu/Units/binary.html)\n\n<decimalSI>       ::= m | "" | k | M | G | T | P | E\n\n\t(Note that 1024 = 1Ki but 1000 = 1k; I didn\'t choose the capitalization.)\n\n<decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber> ```'},
    'io.k8s.apimachinery.pkg.util.intstr.IntOrString': {
        'type': 'string', 'format': 'int-or-string',
        'description': 'IntOrString is a type that can hold an int32 or a string.  When used in JSON or YAML marshalling and unmarshalling, it produces or consumes the inner type.  This allows you to have, for example, a JSON field that can accept a name or number.'},
}
# Opaque objects: any content is accepted (the Go types decode them as raw JSON).
OPAQUE = {
    'io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1',
    'io.k8s.apimachinery.pkg.runtime.RawExtension',
    'io.k8s.apimachinery.pkg.apis.meta.v1.Patch',
}

# Fields whose element type the TypeScript declarations inline (embedded kinds).
INLINE = {
    ('io.k8s.api.apps.v1.StatefulSetSpec', 'volumeClaimTemplates'):
        'Array<IIoK8sApiCoreV1PersistentVolumeClaim>',
}

TYPEMETA_DESC = {
    'apiVersion': 'APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources',
    'kind': 'Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds',
}

# ---------------------------------------------------------------------------
# x-kubernetes-* extensions, from k8s.io/api struct tags and markers:
#   patchStrategy/patchMergeKey -> x-kubernetes-patch-strategy/-merge-key
#   +listType/+listMapKey       -> x-kubernetes-list-type/-list-map-keys
#   +structType=atomic / +mapType=atomic -> x-kubernetes-map-type: atomic
# Arrays not named here get x-kubernetes-list-type: atomic (the default
# Kubernetes gives lists without a marker).
# Row: (type, field, patch strategy, merge key, list type, list map keys)
# ---------------------------------------------------------------------------
C = 'io.k8s.api.core.v1.'
A = 'io.k8s.api.apps.v1.'
B = 'io.k8s.api.batch.v1.'
D = 'io.k8s.api.discovery.v1.'
P = 'io.k8s.api.policy.v1.'
M = 'io.k8s.apimachinery.pkg.apis.meta.v1.'
LISTS = [
    (M + 'ObjectMeta', 'finalizers', 'merge', None, 'set', None),
    (M + 'ObjectMeta', 'ownerReferences', 'merge', 'uid', 'map', ['uid']),
    (C + 'PodSpec', 'volumes', 'merge,retainKeys', 'name', 'map', ['name']),
    (C + 'PodSpec', 'initContainers', 'merge', 'name', 'map', ['name']),
    (C + 'PodSpec', 'containers', 'merge', 'name', 'map', ['name']),
    (C + 'PodSpec', 'ephemeralContainers', 'merge', 'name', 'map', ['name']),
    (C + 'PodSpec', 'imagePullSecrets', 'merge', 'name', 'map', ['name']),
    (C + 'PodSpec', 'hostAliases', 'merge', 'ip', 'map', ['ip']),
    (C + 'PodSpec', 'topologySpreadConstraints', 'merge', 'topologyKey', 'map',
     ['topologyKey', 'whenUnsatisfiable']),
    (C + 'PodSpec', 'schedulingGates', 'merge', 'name', 'map', ['name']),
    (C + 'PodSpec', 'resourceClaims', 'merge,retainKeys', 'name', 'map', ['name']),
    (C + 'Container', 'ports', 'merge', 'containerPort', 'map', ['containerPort', 'protocol']),
    (C + 'Container', 'env', 'merge', 'name', 'map', ['name']),
    (C + 'Container', 'volumeMounts', 'merge', 'mountPath', 'map', ['mountPath']),
    (C + 'Container', 'volumeDevices', 'merge', 'devicePath', 'map', ['devicePath']),
    (C + 'EphemeralContainer', 'ports', 'merge', 'containerPort', 'map', ['containerPort', 'protocol']),
    (C + 'EphemeralContainer', 'env', 'merge', 'name', 'map', ['name']),
    (C + 'EphemeralContainer', 'volumeMounts', 'merge', 'mountPath', 'map', ['mountPath']),
    (C + 'EphemeralContainer', 'volumeDevices', 'merge', 'devicePath', 'map', ['devicePath']),
    (C + 'ResourceRequirements', 'claims', None, None, 'map', ['name']),
    (C + 'PodStatus', 'conditions', 'merge', 'type', 'map', ['type']),
    (C + 'PodStatus', 'podIPs', 'merge', 'ip', 'map', ['ip']),
    (C + 'PodStatus', 'hostIPs', 'merge', 'ip', 'atomic', None),
    (C + 'PodStatus', 'resourceClaimStatuses', 'merge,retainKeys', 'name', 'map', ['name']),
    (C + 'ContainerStatus', 'volumeMounts', 'merge', 'mountPath', 'map', ['mountPath']),
    (C + 'ContainerStatus', 'allocatedResourcesStatus', 'merge', 'name', 'map', ['name']),
    (C + 'ResourceStatus', 'resources', None, None, 'map', ['resourceID']),
    (C + 'ServiceSpec', 'ports', 'merge', 'port', 'map', ['port', 'protocol']),
    (C + 'ServiceStatus', 'conditions', 'merge', 'type', 'map', ['type']),
    (C + 'NodeSpec', 'podCIDRs', 'merge', None, 'set', None),
    (C + 'NodeStatus', 'conditions', 'merge', 'type', 'map', ['type']),
    (C + 'NodeStatus', 'addresses', 'merge', 'type', 'map', ['type']),
    (C + 'NamespaceStatus', 'conditions', 'merge', 'type', 'map', ['type']),
    (C + 'ServiceAccount', 'secrets', 'merge', 'name', 'map', ['name']),
    (C + 'ReplicationControllerStatus', 'conditions', 'merge', 'type', 'map', ['type']),
    (A + 'DeploymentStatus', 'conditions', 'merge', 'type', 'map', ['type']),
    (A + 'ReplicaSetStatus', 'conditions', 'merge', 'type', 'map', ['type']),
    (A + 'DaemonSetStatus', 'conditions', 'merge', 'type', 'map', ['type']),
    (A + 'StatefulSetStatus', 'conditions', 'merge', 'type', 'map', ['type']),
    (B + 'JobStatus', 'conditions', 'merge', 'type', 'atomic', None),
    (B + 'PodFailurePolicyOnExitCodesRequirement', 'values', None, None, 'set', None),
    (B + 'UncountedTerminatedPods', 'succeeded', None, None, 'set', None),
    (B + 'UncountedTerminatedPods', 'failed', None, None, 'set', None),
    (D + 'Endpoint', 'addresses', None, None, 'set', None),
    (P + 'PodDisruptionBudgetStatus', 'conditions', 'merge', 'type', 'map', ['type']),
]
# Non-list fields with a patch strategy.
FIELD_STRATEGY = [
    (A + 'DeploymentSpec', 'strategy', 'retainKeys'),
    (P + 'PodDisruptionBudgetSpec', 'selector', 'replace'),
]
# []byte values, which JSON carries as base64 strings.
BYTE_MAPS = [(C + 'Secret', 'data'), (C + 'ConfigMap', 'binaryData')]
ATOMIC_MAPS = [(C + 'PodSpec', 'nodeSelector'), (C + 'ServiceSpec', 'selector'),
               (C + 'ReplicationControllerSpec', 'selector')]
ATOMIC_STRUCTS = [M + t for t in ['LabelSelector', 'OwnerReference']] + [C + t for t in [
    'LocalObjectReference', 'ObjectReference', 'ConfigMapKeySelector', 'SecretKeySelector',
    'ObjectFieldSelector', 'ResourceFieldSelector', 'NodeSelector', 'NodeSelectorTerm',
    'TopologySelectorTerm', 'TypedLocalObjectReference', 'EndpointAddress', 'ConfigMapEnvSource',
    'SecretEnvSource', 'SecretReference', 'ClusterTrustBundleProjection', 'FileKeySelector',
    'ImageVolumeSource', 'ModifyVolumeStatus', 'VolumeNodeAffinity']] + [
    D + 'EndpointPort', 'io.k8s.api.networking.v1.IngressClassParametersReference']


def alias_to_name():
    """IIoK8s... alias -> definition name, from every .d.ts's export line."""
    m = {}
    for root, folder, prefix in PACKAGES:
        d = os.path.join(root, 'package', folder)
        for f in os.listdir(d):
            if not f.endswith('.d.ts') or f == 'index.d.ts':
                continue
            text = open(os.path.join(d, f)).read()
            for alias in re.findall(r'as (IIoK8s\w+)', text):
                m[alias] = prefix + '.' + f[:-5]
    return m


# Descriptions are cut to the whole sentences of the first paragraph that fill
# about this many characters, which keeps the table a few hundred KB.
DESCRIPTION_CHARS = 120


def shorten(text):
    para = text.split('\n\n')[0]
    out = ''
    for m in re.finditer(r'.+?(?:\.(?=\s|$)|$)\s*', para, re.S):
        if out and len(out) >= DESCRIPTION_CHARS:
            break
        out += m.group(0)
    return out.strip()


def clean_desc(lines):
    out = []
    for l in lines:
        l = re.sub(r'^\s*\* ?', '', l.rstrip())
        out.append(l)
    text = '\n'.join(out).strip()
    text = shorten(text.replace('\\*', '*'))
    # Paragraphs are separated by an empty comment line; lines within one are
    # not wrapped in these files, except the enum bullet lists.
    return text


def parse_dts(path):
    text = open(path).read()
    m = re.search(r'/\*\*((?:(?!\*/).)*)\*/\s*export interface I\w+(?: extends TypeMeta)? \{(.*?)\n\}',
                  text, re.S)
    if not m:
        return None
    desc = clean_desc(m.group(1).split('\n'))
    props = []
    lines = m.group(2).split('\n')
    i = 0
    comment = None
    while i < len(lines):
        line = lines[i]
        if line.startswith('    /**'):
            block = []
            while not lines[i].rstrip().endswith('*/'):
                block.append(lines[i])
                i += 1
            block.append(lines[i])
            comment = clean_desc([l.replace('/**', '').replace('*/', '') for l in block])
            i += 1
            continue
        pm = re.match(r'    "([^"]+)"(\??): (.*)$', line)
        if pm:
            ts = pm.group(3)
            depth = ts.count('{') + ts.count('<') - ts.count('}') - ts.count('>')
            while depth > 0:
                i += 1
                ts += ' ' + lines[i].strip()
                depth += lines[i].count('{') + lines[i].count('<') - lines[i].count('}') - lines[i].count('>')
            ts = ts.rstrip(';')
            ts = re.sub(r'\{ \[key: string\]: ([^;{}]+); \}', r'{ [key: string]: \1; }', ts)
            props.append((pm.group(1), pm.group(2) == '?', ts, comment or ''))
            comment = None
        i += 1
    gvk = None
    lits = {p[0]: p[2] for p in props}
    if 'extends TypeMeta' in m.group(0) and re.fullmatch(r'"[^"]+"', lits.get('kind', '')):
        api_version = lits['apiVersion'].strip('"')
        group, _, version = api_version.rpartition('/')
        gvk = {'group': group, 'kind': lits['kind'].strip('"'), 'version': version}
    return {'description': desc, 'props': props, 'typemeta': 'extends TypeMeta' in m.group(0),
            'gvk': gvk}


def load_formats():
    """client-node class -> {field: (type, format)}."""
    d = os.path.join(CN, 'package', 'dist', 'gen', 'models')
    res = {}
    for f in os.listdir(d):
        if not f.endswith('.js') or f.endswith('.map'):
            continue
        text = open(os.path.join(d, f)).read()
        fields = {}
        for m in re.finditer(r'"baseName": "([^"]+)",\s*"type": "([^"]*)",\s*"format": "([^"]*)"', text):
            fields[m.group(1)] = (m.group(2), m.group(3))
        res[f[:-3]] = fields
    return res


GROUP_PREFIX = {'core': 'Core', 'apps': 'Apps', 'batch': 'Batch', 'discovery': 'Discovery',
                'networking': 'Networking', 'coordination': 'Coordination',
                'autoscaling': 'Autoscaling', 'meta': 'Meta', 'policy': 'Policy'}


def format_of(formats, name, field):
    parts = name.split('.')
    short, version, group = parts[-1], parts[-2], parts[-3]
    for cls in ['V1' + short, GROUP_PREFIX.get(group, '') + 'V1' + short]:
        if cls in formats and field in formats[cls]:
            return formats[cls][field][1]
    return None


def main():
    aliases = alias_to_name()
    formats = load_formats()
    files = {}
    for root, folder, prefix in PACKAGES:
        d = os.path.join(root, 'package', folder)
        for f in os.listdir(d):
            if f.endswith('.d.ts') and f != 'index.d.ts':
                files[prefix + '.' + f[:-5]] = os.path.join(d, f)

    lists = {(t, f): (s, k, lt, keys) for t, f, s, k, lt, keys in LISTS}
    strategies = {(t, f): s for t, f, s in FIELD_STRATEGY}
    used_lists = set()
    missing_formats = []

    defs = {}
    queue = list(ROOTS)

    def ts_schema(ts, owner, field):
        ts = ts.strip()
        if ts.startswith('Array<') and ts.endswith('>'):
            return {'type': 'array', 'items': ts_schema(ts[6:-1], owner, field)}
        m = re.fullmatch(r'\{ \[key: string\]: (.*); \}', ts)
        if m:
            return {'type': 'object', 'additionalProperties': ts_schema(m.group(1), owner, field)}
        if ts == 'string':
            return {'type': 'string'}
        if ts == 'boolean':
            return {'type': 'boolean'}
        if ts == 'number':
            fmt = format_of(formats, owner, field)
            if fmt is None:
                missing_formats.append(owner + '.' + field)
                fmt = 'int32'
            if fmt == 'double':
                return {'type': 'number', 'format': 'double'}
            return {'type': 'integer', 'format': fmt} if fmt else {'type': 'integer'}
        if re.fullmatch(r'("[^"]*"( \| )?)+', ts):
            return {'type': 'string', 'enum': re.findall(r'"([^"]*)"', ts)}
        if ts in aliases:
            ref = aliases[ts]
            if ref not in defs and ref not in queue:
                queue.append(ref)
            return {'$ref': ref}
        if ts in ('any', 'object', '{}'):
            return {'type': 'object'}
        raise SystemExit('unknown TS type %r in %s.%s' % (ts, owner, field))

    while queue:
        name = queue.pop(0)
        if name in defs:
            continue
        if name in PRIMITIVES:
            defs[name] = dict(PRIMITIVES[name])
            continue
        parsed = parse_dts(files[name])
        if parsed is None:
            raise SystemExit('cannot parse ' + name)
        d = {'description': parsed['description']}
        if name in OPAQUE:
            d['type'] = 'object'
            defs[name] = d
            continue
        props = {}
        required = []
        for pname, optional, ts, pdesc in parsed['props']:
            if parsed['typemeta'] and pname in ('apiVersion', 'kind'):
                props[pname] = {'type': 'string', 'description': TYPEMETA_DESC[pname]}
                continue
            s = ts_schema(INLINE.get((name, pname), ts), name, pname)
            if pdesc:
                s['description'] = pdesc
            if s.get('type') == 'array':
                row = lists.get((name, pname))
                if row:
                    used_lists.add((name, pname))
                    strat, key, lt, keys = row
                    if strat:
                        s['x-kubernetes-patch-strategy'] = strat
                    if key:
                        s['x-kubernetes-patch-merge-key'] = key
                    s['x-kubernetes-list-type'] = lt
                    if keys:
                        s['x-kubernetes-list-map-keys'] = keys
                else:
                    s['x-kubernetes-list-type'] = 'atomic'
            if (name, pname) in strategies:
                s['x-kubernetes-patch-strategy'] = strategies[(name, pname)]
            if (name, pname) in BYTE_MAPS:
                s['additionalProperties']['format'] = 'byte'
            if (name, pname) in ATOMIC_MAPS:
                s['x-kubernetes-map-type'] = 'atomic'
            props[pname] = s
            if not optional:
                required.append(pname)
        d['type'] = 'object'
        d['properties'] = props
        if required:
            d['required'] = required
        if parsed['gvk']:
            d['x-kubernetes-group-version-kind'] = [parsed['gvk']]
        if name in ATOMIC_STRUCTS:
            d['x-kubernetes-map-type'] = 'atomic'
        defs[name] = d

    unused = [r for r in lists if r not in used_lists and r[0] in defs]
    if unused:
        print('warning: extension rows matching no field:', unused, file=sys.stderr)
    if missing_formats:
        print('warning: no format found (int32 assumed):', missing_formats, file=sys.stderr)

    with open(OUT, 'w') as out:
        out.write('// Generated by apiserver/schemas/gen_definitions.py: the OpenAPI (v2-style)\n'
                  '// definitions of the kinds kin serves, "$ref" holding a bare definition name.\n'
                  '// Included by openapi.cc as one raw string literal.\n')
        out.write('R"kinjson({\n')
        names = sorted(defs)
        for i, n in enumerate(names):
            d = defs[n]
            out.write(json.dumps(n) + ': {')
            head = {k: v for k, v in d.items() if k != 'properties'}
            out.write(json.dumps(head, sort_keys=True, ensure_ascii=False)[1:-1])
            if 'properties' in d:
                out.write(', "properties": {\n')
                pn = sorted(d['properties'])
                for j, p in enumerate(pn):
                    out.write('  ' + json.dumps(p) + ': ' +
                              json.dumps(d['properties'][p], sort_keys=True, ensure_ascii=False))
                    out.write(',\n' if j + 1 < len(pn) else '}')
            out.write('}' + (',\n' if i + 1 < len(names) else '\n'))
        out.write('})kinjson"\n')
    print('%d definitions, %d bytes' % (len(defs), os.path.getsize(OUT)), file=sys.stderr)


main()
