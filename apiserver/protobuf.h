// Decoding of Kubernetes protobuf request bodies into JSON objects.
//
// kubectl 1.32+ sends the bodies of `kubectl create <generator> ...`
// (namespace, configmap, secret, deployment, service, job, cronjob, quota,
// role, ...) as Content-Type application/vnd.kubernetes.protobuf and does not
// retry with JSON when the server refuses them, so the API server has to read
// them. The rest of kin works on JSON only; this module turns such a body into
// the JSON object the same object has in Kubernetes' JSON serialization:
// "apiVersion" and "kind" set, omitempty honoured (absent or zero-valued
// non-pointer fields stay absent, pointer fields that are present keep their
// zero value, e.g. "replicas": 0), int-or-string as a number or a string,
// quantities as strings, times as RFC 3339, bytes as base64, embedded structs
// (ProbeHandler, VolumeSource, LocalObjectReference, ...) inlined.
// Deviation: a zero metav1.Time (which Go renders as null) is left out.
//
// Wire format: the 4 bytes "k8s\0", then a runtime.Unknown message
// {typeMeta = 1 {apiVersion = 1, kind = 2}, raw = 2, contentEncoding = 3,
// contentType = 4} whose raw bytes are the object's own message. Field numbers
// and types come from the generated.proto files of k8s.io/api and
// k8s.io/apimachinery (see protobuf.cc). Unknown field numbers are skipped.
//
// Errors: kin::Error. BadRequest for a body that is not Kubernetes protobuf
// (missing magic, truncated or malformed wire data, wrong wire type for a
// known field); UnsupportedMediaType (415) for a kind whose schema kin does
// not carry, e.g. "protobuf: decoding apps/v1 Foo is not supported; send JSON".
//
// Thread-safety: stateless, thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/yaml.h"

namespace kin::apiserver {

// The media type kubectl puts in Content-Type (possibly with parameters).
inline constexpr std::string_view kKubeProtobufMediaType = "application/vnd.kubernetes.protobuf";

Json DecodeKubeProtobuf(std::string_view body);

// "group/version Kind" pairs DecodeKubeProtobuf understands, e.g. "apps/v1 Deployment".
std::vector<std::string> SupportedKubeProtobufKinds();

}  // namespace kin::apiserver
