// Server-side printing: the meta.k8s.io/v1 Table that `kubectl get` asks for.
//
// kubectl sends `Accept: application/json;as=Table;v=v1;g=meta.k8s.io,...`
// on get, list and watch and prints the columns the server chose. This module
// builds those tables from stored objects (the v1 wire form) the way
// kube-apiserver 1.31 does (pkg/printers/internalversion/printers.go for the
// built-in kinds, the generic Name / Created At table for anything else):
// same column names, types, formats and priorities, same cell values and
// JSON types ("1/2" strings, integers for counts, "<none>" placeholders).
//
// As in kube-apiserver, every row carries the wide (-o wide) cells too; the
// priority-1 column definitions tell kubectl which ones to hide. Each row
// also carries the object as the request's includeObject asks: a
// PartialObjectMetadata (the default), the full object, or null. Pod rows of
// Succeeded / Failed pods carry the "Completed" row condition.
//
// Watch: kube-apiserver sends every watch event's object as a one-row Table
// and leaves columnDefinitions out (null) after the first event; pass
// include_column_definitions = false for those.
//
// Deviations, deliberate: the response is always meta.k8s.io/v1, even when
// the client only accepts v1beta1 (same wire shape; kubectl >= 1.15 asks for
// v1 first). A Service without spec.clusterIPs shows spec.clusterIP, a pod
// without status.podIPs shows status.podIP, a service port without a
// protocol shows TCP, and a missing spec.replicas of a Deployment,
// ReplicaSet or StatefulSet counts as 1 (what API defaulting stores).
// Descriptions of columns are shortened. The row object carries the stored
// metadata as is (managedFields included).
//
// Thread-safety: stateless, thread-safe.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "base/yaml.h"
#include "client/resources.h"

namespace kin::apiserver {

// The Content-Type of a Table response.
inline constexpr std::string_view kTableContentType =
    "application/json;as=Table;v=v1;g=meta.k8s.io";

// What a row's "object" holds (the includeObject query parameter).
enum class IncludeObject {
  kNone,      // null
  kMetadata,  // {"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{...}}
  kObject,    // the full object
};

// "" and "Metadata" -> kMetadata, "Object", "None". Anything else throws
// Error::BadRequest `unrecognized includeObject value: "x"` (kube's words).
IncludeObject ParseIncludeObject(std::string_view value);

// True when the Accept header prefers a JSON Table
// (application/json;as=Table;g=meta.k8s.io;v=v1 or v=v1beta1) over plain
// JSON: the first usable media range, by q-value then order, is a Table one.
// Ranges the server cannot serve (protobuf, other "as=" kinds, other
// versions) are skipped.
bool WantsTable(std::string_view accept);

// k8s.io/apimachinery/pkg/util/duration.HumanDuration: "0s", "119s", "5m3s",
// "42m", "3h5m", "20h", "2d3h", "300d", "3y12d", "10y"; "<invalid>" below -1s.
std::string HumanDuration(std::chrono::seconds d);

// The columnDefinitions of resource r, each
// {"name","type","format","description","priority"}, wide columns included.
Json TableColumnDefinitions(const ResourceInfo& r);

// One row {"cells":[...], ("conditions":[...],) "object":...} for obj;
// `now` is the clock AGE and "ago" cells are measured against.
Json TableRow(const ResourceInfo& r, const Json& obj, IncludeObject include,
              std::chrono::system_clock::time_point now);

// The whole Table: {"kind":"Table","apiVersion":"meta.k8s.io/v1",
// "metadata":{"resourceVersion","continue"} (each only when not empty),
// "columnDefinitions":[...] (null when !include_column_definitions),
// "rows":[...]}.
Json MakeTable(const ResourceInfo& r, const std::vector<Json>& objs,
               const std::string& resource_version, const std::string& continue_token,
               IncludeObject include, std::chrono::system_clock::time_point now,
               bool include_column_definitions = true);

}  // namespace kin::apiserver
