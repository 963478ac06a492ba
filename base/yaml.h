// YAML <-> JSON codec for manifests and kubectl-style output.
//
// Objects live as nlohmann::json everywhere in kin; YAML is only a wire and
// file format. Parsing follows the YAML 1.2 core schema for plain scalars
// (true/false, null/~, integers, floats; quoted scalars are always strings),
// the way Kubernetes manifests are read. A multi-document stream ("---")
// yields one JSON value per non-empty document.
//
// Errors: kin::Error (BadRequest) whose message carries the line and column
// (1-based), e.g. "yaml: line 3, column 5: illegal map value".
//
// Thread-safety: stateless, thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace kin {

using Json = nlohmann::json;

std::vector<Json> ParseYamlDocuments(std::string_view text);
// Exactly one document (an empty stream is null).
Json ParseYaml(std::string_view text);
// Accepts JSON or YAML (JSON is YAML, but JSON errors read better as JSON's).
Json ParseJsonOrYaml(std::string_view text);

// Block-style YAML as kubectl prints it (keys sorted, sequences under a key
// not indented, strings quoted only when a YAML 1.1 or 1.2 reader would take
// them for another type).
std::string ToYaml(const Json& value);
// Documents joined by "---\n".
std::string ToYamlDocuments(const std::vector<Json>& docs);

}  // namespace kin
