#include "apiserver/crd.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <set>
#include <tuple>

#include "apiserver/openapi.h"
#include "apiserver/registry.h"
#include "apiserver/schema_format.h"
#include "apiserver/store.h"
#include "apiserver/table.h"
#include "apiserver/validation.h"
#include "base/log.h"
#include "base/strings.h"

namespace kin::apiserver {

namespace {

std::string Str(const Json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

const Json& Field(const Json& j, const char* key) {
  static const Json kNull;
  if (!j.is_object()) return kNull;
  auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

bool Flag(const Json& j, const char* key) {
  const Json& v = Field(j, key);
  return v.is_boolean() && v.get<bool>();
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), ::tolower);
  return s;
}

// How Go's field errors print a value: strings quoted, the rest as JSON.
std::string GoValue(const Json& v) {
  if (v.is_string()) return GoQuote(v.get<std::string>());
  if (v.is_null()) return "\"null\"";
  return v.dump();
}

// The served CRDs, by group_resource ("widgets.example.com").
struct Catalog {
  std::mutex mu;
  std::map<std::string, std::shared_ptr<const Json>> crds;
};

Catalog& TheCatalog() {
  static Catalog* c = new Catalog();
  return *c;
}

std::shared_ptr<const Json> CrdFor(const ResourceInfo& r) {
  Catalog& c = TheCatalog();
  std::lock_guard lock(c.mu);
  auto it = c.crds.find(r.group_resource());
  return it == c.crds.end() ? nullptr : it->second;
}

const Json* VersionOf(const Json& crd, const std::string& version) {
  for (const auto& v : Field(Field(crd, "spec"), "versions")) {
    if (Str(v, "name") == version) return &v;
  }
  return nullptr;
}

Json SchemaOf(const Json& crd, const std::string& version) {
  const Json* v = VersionOf(crd, version);
  if (v == nullptr) return Json();
  return Field(Field(*v, "schema"), "openAPIV3Schema");
}

std::string Join2(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

// --- schema walking ---------------------------------------------------------

const Json* PropertySchema(const Json& schema, const std::string& key) {
  const Json& props = Field(schema, "properties");
  if (props.is_object()) {
    auto it = props.find(key);
    if (it != props.end()) return &*it;
  }
  const Json& ap = Field(schema, "additionalProperties");
  if (ap.is_object()) return &ap;
  return nullptr;
}

bool PreservesUnknown(const Json& schema) {
  if (Flag(schema, "x-kubernetes-preserve-unknown-fields")) return true;
  const Json& ap = Field(schema, "additionalProperties");
  return ap.is_boolean() && ap.get<bool>();
}

bool IsIntegral(const Json& v) {
  if (v.is_number_integer()) return true;
  if (v.is_number_float()) {
    double d = v.get<double>();
    return std::isfinite(d) && std::floor(d) == d;
  }
  return false;
}

std::string FormatNumber(const Json& n) {
  if (n.is_number_float()) {
    double d = n.get<double>();
    if (std::floor(d) == d && std::fabs(d) < 1e15) return std::to_string(static_cast<int64_t>(d));
  }
  return n.dump();
}

size_t Utf8Length(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xc0) != 0x80;
  return n;
}

// kube-openapi's Result: the errors (each reported once, as AddErrors
// keeps them) and the match count anyOf and oneOf use to pick which
// failing branch's errors to report (the one with most passing checks).
struct Result {
  std::vector<SchemaError> errors;
  int matches = 0;

  bool ok() const { return errors.empty(); }
  void Add(SchemaError e) {
    for (const auto& have : errors) {
      if (have.field == e.field && have.message == e.message) return;
    }
    errors.push_back(std::move(e));
  }
  void Merge(const Result& other) {
    for (const auto& e : other.errors) Add(e);
    matches += other.matches;
  }
};

Result Validate(const Json& schema, const Json& value, const std::string& path);

void ValidateEmbedded(const Json& value, const std::string& path, Result& r) {
  if (!value.is_object() || value.empty()) return;
  for (const char* k : {"apiVersion", "kind"}) {
    if (Str(value, k).empty()) r.Add({Join2(path, k), "FieldValueRequired", "Required value"});
  }
}

// The type name (and Go format) kube-openapi infers from a decoded value.
std::pair<std::string, std::string> ValueTypeAndFormat(const Json& v) {
  if (v.is_boolean()) return {"boolean", ""};
  if (v.is_string()) return {"string", ""};
  if (v.is_number_integer()) return {"integer", "int64"};
  if (v.is_number()) return {"number", "float64"};
  if (v.is_array()) return {"array", ""};
  return {"object", ""};
}

// A logic junctor's error ("must validate all the schemas (allOf)"):
// kube-openapi reports it without a field, so kube-apiserver's converter
// gives it the nil path, "<nil>", and an empty value.
SchemaError JunctorError(const std::string& path, const std::string& what) {
  return {"<nil>", "FieldValueInvalid", "Invalid value: \"\": " + GoQuote(path) + " " + what};
}

// allOf, anyOf, oneOf and not, as kube-openapi's schemaPropsValidator.
Result ValidateJunctors(const Json& schema, const Json& value, const std::string& path) {
  Result main;
  const Json& any_of = Field(schema, "anyOf");
  if (any_of.is_array() && !any_of.empty()) {
    const Result* best = nullptr;
    std::vector<Result> results;
    results.reserve(any_of.size());
    bool succeeded = false;
    for (const auto& sub : any_of) {
      results.push_back(Validate(sub, value, path));
      const Result& res = results.back();
      if (res.ok()) {
        best = &res;
        succeeded = true;
        break;
      }
      if (best == nullptr || res.matches > best->matches) best = &res;
    }
    if (!succeeded) main.Add(JunctorError(path, "must validate at least one schema (anyOf)"));
    if (best != nullptr) main.Merge(*best);
  }
  const Json& one_of = Field(schema, "oneOf");
  if (one_of.is_array() && !one_of.empty()) {
    std::vector<Result> results;
    results.reserve(one_of.size());
    const Result* best = nullptr;
    const Result* first_success = nullptr;
    int validated = 0;
    for (const auto& sub : one_of) {
      results.push_back(Validate(sub, value, path));
      const Result& res = results.back();
      if (res.ok()) {
        ++validated;
        best = nullptr;
        if (first_success == nullptr) first_success = &res;
        continue;
      }
      if (validated == 0 && (best == nullptr || res.matches > best->matches)) best = &res;
    }
    if (validated != 1) {
      main.Add(JunctorError(path, "must validate one and only one schema (oneOf). " +
                                      (validated == 0 ? std::string("Found none valid")
                                                      : "Found " + std::to_string(validated) +
                                                            " valid alternatives")));
      if (best != nullptr) main.Merge(*best);
    } else if (first_success != nullptr) {
      main.Merge(*first_success);
    }
  }
  const Json& all_of = Field(schema, "allOf");
  if (all_of.is_array() && !all_of.empty()) {
    size_t validated = 0;
    for (const auto& sub : all_of) {
      Result res = Validate(sub, value, path);
      if (res.ok()) ++validated;
      main.Merge(res);
    }
    if (validated != all_of.size()) {
      main.Add(JunctorError(path, std::string("must validate all the schemas (allOf)") +
                                      (validated == 0 ? ". None validated" : "")));
    }
  }
  const Json& not_schema = Field(schema, "not");
  if (not_schema.is_object() && Validate(not_schema, value, path).ok()) {
    main.Add(JunctorError(path, "must not validate the schema (not)"));
  }
  main.matches++;
  return main;
}

// The checks of one schema node, in kube-openapi's order (type, junctors,
// string, format, number, array, enum, object); each that applies to the
// value's kind counts a match.
Result Validate(const Json& schema, const Json& value, const std::string& path) {
  Result r;
  if (!schema.is_object()) return r;
  const std::string name = path.empty() ? "body" : path;
  auto invalid = [&](const std::string& detail) {
    return SchemaError{path, "FieldValueInvalid",
                       "Invalid value: " + GoValue(value) + ": " + name + " in body " + detail};
  };
  auto type_error = [&](const std::string& type, const std::string& got) {
    return SchemaError{path, "FieldValueTypeInvalid",
                       "Invalid value: " + GoQuote(got) + ": " + name + " in body must be of type " +
                           type + ": " + GoQuote(got)};
  };
  std::vector<std::string> types;
  if (Flag(schema, "x-kubernetes-int-or-string")) {
    types = {"integer", "string"};
  } else if (!Str(schema, "type").empty()) {
    types = {Str(schema, "type")};
  }
  const std::string format =
      EffectiveSchemaFormat(types.size() == 1 ? types[0] : "", Str(schema, "format"));
  auto has_type = [&](const std::string& t) {
    return std::find(types.begin(), types.end(), t) != types.end();
  };
  if (value.is_null()) {
    if (Flag(schema, "nullable") || types.empty()) return r;
    r.Add(type_error(Join(types, ","), "null"));
    return r;
  }
  // Type (with format: a string or array in a formatted non-numeric field
  // passes the type check, as kube-openapi's typeValidator lets it).
  if (!types.empty() || !format.empty()) {
    auto [vtype, vformat] = ValueTypeAndFormat(value);
    bool float_int = vtype == "number" && IsIntegral(value) && has_type("integer");
    bool int_float = vtype == "integer" && has_type("number");
    bool stringish = value.is_string() || value.is_array();
    if (!stringish && !format.empty() &&
        !(has_type(vtype) || vformat == format || float_int || int_float)) {
      r.Add(type_error(format, vformat));
    } else if (!(has_type("number") || has_type("integer")) && !format.empty() && stringish) {
      r.matches++;
    } else if (!(has_type(vtype) || float_int || int_float)) {
      r.Add(type_error(Join(types, ","), vtype));
    } else {
      r.matches++;
    }
    r.matches++;
  }
  r.Merge(ValidateJunctors(schema, value, path));
  r.matches++;
  if (value.is_string()) {
    // The first of maxLength, minLength and pattern that fails, as
    // kube-openapi's stringValidator stops there.
    const std::string s = value.get<std::string>();
    const Json& maxl = Field(schema, "maxLength");
    const Json& minl = Field(schema, "minLength");
    const std::string pattern = Str(schema, "pattern");
    if (maxl.is_number_integer() && Utf8Length(s) > maxl.get<size_t>()) {
      r.Add({path, "FieldValueTooLong", "Too long: may not be more than " + maxl.dump() + " bytes"});
    } else if (minl.is_number_integer() && Utf8Length(s) < minl.get<size_t>()) {
      r.Add(invalid("should be at least " + minl.dump() + " chars long"));
    } else if (!pattern.empty()) {
      try {
        if (!std::regex_search(s, std::regex(pattern, std::regex::ECMAScript))) {
          r.Add(invalid("should match '" + pattern + "'"));
        }
      } catch (const std::regex_error&) {
        // An invalid pattern was refused when the CRD was written.
      }
    }
    r.matches++;
    if (!format.empty() && IsKnownStringFormat(format)) {
      if (!IsValidStringFormat(format, s)) r.Add(type_error(format, s));
      r.matches++;
    }
  }
  if (value.is_number()) {
    double d = value.get<double>();
    const Json& mult = Field(schema, "multipleOf");
    if (mult.is_number() && mult.get<double>() != 0 && std::fmod(d, mult.get<double>()) != 0) {
      r.Add(invalid("should be a multiple of " + FormatNumber(mult)));
    }
    const Json& min = Field(schema, "minimum");
    if (min.is_number()) {
      bool ex = Flag(schema, "exclusiveMinimum");
      double m = min.get<double>();
      if (ex ? d <= m : d < m) {
        r.Add(invalid(std::string("should be greater than ") + (ex ? "" : "or equal to ") +
                      FormatNumber(min)));
      }
    }
    const Json& max = Field(schema, "maximum");
    if (max.is_number()) {
      bool ex = Flag(schema, "exclusiveMaximum");
      double m = max.get<double>();
      if (ex ? d >= m : d > m) {
        r.Add(invalid(std::string("should be less than ") + (ex ? "" : "or equal to ") +
                      FormatNumber(max)));
      }
    }
    r.matches += 2;
  }
  if (value.is_array()) {
    const Json& items = Field(schema, "items");
    for (size_t i = 0; items.is_object() && i < value.size(); ++i) {
      r.Merge(Validate(items, value[i], path + "[" + std::to_string(i) + "]"));
    }
    const Json& mini = Field(schema, "minItems");
    if (mini.is_number_integer() && value.size() < mini.get<size_t>()) {
      r.Add(invalid("should have at least " + mini.dump() + " items"));
    }
    const Json& maxi = Field(schema, "maxItems");
    if (maxi.is_number_integer() && value.size() > maxi.get<size_t>()) {
      r.Add({path, "FieldValueTooMany",
             "Too many: " + std::to_string(value.size()) + ": must have at most " + maxi.dump() +
                 " items"});
    }
    const std::string list_type = Str(schema, "x-kubernetes-list-type");
    if (list_type == "set") {
      for (size_t i = 0; i < value.size(); ++i) {
        for (size_t j = 0; j < i; ++j) {
          if (value[i] == value[j]) {
            r.Add({path + "[" + std::to_string(i) + "]", "FieldValueDuplicate",
                   "Duplicate value: " + GoValue(value[i])});
            break;
          }
        }
      }
    } else if (list_type == "map") {
      const Json& keys = Field(schema, "x-kubernetes-list-map-keys");
      std::set<std::string> seen;
      for (size_t i = 0; i < value.size(); ++i) {
        Json key = Json::object();
        if (keys.is_array()) {
          for (const auto& k : keys) {
            if (k.is_string() && value[i].is_object() && value[i].contains(k.get<std::string>())) {
              key[k.get<std::string>()] = value[i][k.get<std::string>()];
            }
          }
        }
        if (!seen.insert(key.dump()).second) {
          r.Add({path + "[" + std::to_string(i) + "]", "FieldValueDuplicate",
                 "Duplicate value: " + key.dump()});
        }
      }
    }
    r.matches += 2;
  }
  const Json& en = Field(schema, "enum");
  if (en.is_array() && !en.empty() && std::find(en.begin(), en.end(), value) == en.end()) {
    std::vector<std::string> vals;
    for (const auto& e : en) vals.push_back(GoValue(e));
    r.Add({path, "FieldValueNotSupported",
           "Unsupported value: " + GoValue(value) + ": supported values: " + Join(vals, ", ")});
  }
  r.matches++;
  if (value.is_object()) {
    r.matches++;
    // Too few or too many properties end the object's checks, as in
    // kube-openapi's objectValidator.
    const Json& minp = Field(schema, "minProperties");
    const Json& maxp = Field(schema, "maxProperties");
    if (minp.is_number_integer() && value.size() < minp.get<size_t>()) {
      r.Add(invalid("should have at least " + minp.dump() + " properties"));
    } else if (maxp.is_number_integer() && value.size() > maxp.get<size_t>()) {
      r.Add(invalid("should have at most " + maxp.dump() + " properties"));
    } else {
      for (const auto& [k, v] : value.items()) {
        if (path.empty() && (k == "metadata" || k == "apiVersion" || k == "kind")) continue;
        if (Flag(schema, "x-kubernetes-embedded-resource") && k == "metadata") continue;
        const Json* sub = PropertySchema(schema, k);
        if (sub != nullptr) r.Merge(Validate(*sub, v, Join2(path, k)));
      }
      const Json& required = Field(schema, "required");
      if (required.is_array()) {
        for (const auto& k : required) {
          if (k.is_string() && !value.contains(k.get<std::string>())) {
            r.Add({Join2(path, k.get<std::string>()), "FieldValueRequired", "Required value"});
          }
        }
      }
      if (Flag(schema, "x-kubernetes-embedded-resource")) ValidateEmbedded(value, path, r);
    }
  }
  r.matches++;
  return r;
}

// --- CRD validation ---------------------------------------------------------

struct Errs {
  std::vector<Cause> list;
  void Required(const std::string& f, const std::string& detail = "") {
    list.push_back({"FieldValueRequired", detail.empty() ? "Required value" : "Required value: " + detail, f});
  }
  void Invalid(const std::string& f, const std::string& value_text, const std::string& detail) {
    list.push_back({"FieldValueInvalid", "Invalid value: " + value_text + ": " + detail, f});
  }
  void NotSupported(const std::string& f, const std::string& v, const std::string& supported) {
    list.push_back({"FieldValueNotSupported",
                    "Unsupported value: " + GoQuote(v) + ": supported values: " + supported, f});
  }
};

void CheckDns1035(Errs& e, const std::string& field, const std::string& value) {
  auto problems = IsDNS1035Label(value);
  if (!problems.empty()) e.Invalid(field, GoQuote(value), Join(problems, ","));
}

// --- structural schemas (apiextensions' schema/validation.go) ---------------

enum class Level { kRoot, kItem, kField };

void CheckValueValidation(const Json& s, bool skip_any_of, bool skip_first_all_of_any_of,
                          const std::string& path, Errs& e);

// anyOf: [{type: integer}, {type: string}], the int-or-string pattern
// that may carry a type inside a junctor.
bool IsIntOrStringAnyOf(const Json& any_of) {
  return any_of.is_array() && any_of.size() == 2 && any_of[0] == Json{{"type", "integer"}} &&
         any_of[1] == Json{{"type", "string"}};
}

// A schema under allOf, anyOf, oneOf or not: value validations only.
void CheckNestedValueValidation(const Json& v, bool skip_any_of, bool skip_all_of_any_of,
                                const std::string& path, Errs& e) {
  if (!v.is_object()) return;
  auto forbidden = [&](const std::string& field, const std::string& detail) {
    e.list.push_back({"FieldValueForbidden", "Forbidden: " + detail, path + "." + field});
  };
  CheckValueValidation(v, skip_any_of, skip_all_of_any_of, path, e);
  if (Field(v, "items").is_object()) {
    CheckNestedValueValidation(v["items"], false, false, path + ".items", e);
  }
  const Json& props = Field(v, "properties");
  if (props.is_object()) {
    for (const auto& [k, sub] : props.items()) {
      CheckNestedValueValidation(sub, false, false, path + ".properties[" + k + "]", e);
    }
  }
  if (!Str(v, "type").empty()) forbidden("type", "must be empty to be structural");
  if (v.contains("additionalProperties")) {
    forbidden("additionalProperties", "must be undefined to be structural");
  }
  if (v.contains("default") && !v["default"].is_null()) {
    forbidden("default", "must be undefined to be structural");
  }
  if (!Str(v, "title").empty()) forbidden("title", "must be empty to be structural");
  if (!Str(v, "description").empty()) forbidden("description", "must be empty to be structural");
  if (Flag(v, "nullable")) forbidden("nullable", "must be false to be structural");
  if (v.contains("externalDocs")) forbidden("externalDocs", "must be undefined to be structural");
  for (const char* x : {"x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource",
                        "x-kubernetes-int-or-string"}) {
    if (Flag(v, x)) forbidden(x, "must be false to be structural");
  }
  const Json& map_keys = Field(v, "x-kubernetes-list-map-keys");
  if (map_keys.is_array() && !map_keys.empty()) {
    forbidden("x-kubernetes-list-map-keys", "must be empty to be structural");
  }
  for (const char* x : {"x-kubernetes-list-type", "x-kubernetes-map-type"}) {
    if (v.contains(x) && !v[x].is_null()) forbidden(x, "must be undefined to be structural");
  }
  const Json& rules = Field(v, "x-kubernetes-validations");
  if (rules.is_array() && !rules.empty()) {
    forbidden("x-kubernetes-validations", "must be empty to be structural");
  }
  if (props.is_object() && props.contains("metadata")) {
    forbidden("properties[metadata]", "must not be specified in a nested context");
  }
}

void CheckValueValidation(const Json& s, bool skip_any_of, bool skip_first_all_of_any_of,
                          const std::string& path, Errs& e) {
  const Json& any_of = Field(s, "anyOf");
  for (size_t i = 0; !skip_any_of && any_of.is_array() && i < any_of.size(); ++i) {
    CheckNestedValueValidation(any_of[i], false, false, path + ".anyOf[" + std::to_string(i) + "]",
                               e);
  }
  const Json& all_of = Field(s, "allOf");
  for (size_t i = 0; all_of.is_array() && i < all_of.size(); ++i) {
    CheckNestedValueValidation(all_of[i], skip_first_all_of_any_of && i == 0, false,
                               path + ".allOf[" + std::to_string(i) + "]", e);
  }
  const Json& one_of = Field(s, "oneOf");
  for (size_t i = 0; one_of.is_array() && i < one_of.size(); ++i) {
    CheckNestedValueValidation(one_of[i], false, false, path + ".oneOf[" + std::to_string(i) + "]",
                               e);
  }
  CheckNestedValueValidation(Field(s, "not"), false, false, path + ".not", e);
  const std::string pattern = Str(s, "pattern");
  if (!pattern.empty()) {
    try {
      std::regex re(pattern, std::regex::ECMAScript);
    } catch (const std::regex_error&) {
      e.Invalid(path + ".pattern", GoQuote(pattern), "must be a valid regular expression");
    }
  }
}

// Structural: every specified node has a type (unless int-or-string or
// preserving unknown fields), arrays have items, the root is an object
// without additionalProperties, and junctors hold value validations only.
void CheckStructural(const Json& s, const std::string& path, Errs& e, Level level) {
  if (!s.is_object()) return;
  if (Str(s, "type") == "array" && !Field(s, "items").is_object()) {
    e.Required(path + ".items", "must be specified");
  }
  if (Field(s, "items").is_object()) CheckStructural(s["items"], path + ".items", e, Level::kItem);
  const Json& props = Field(s, "properties");
  if (props.is_object()) {
    for (const auto& [k, v] : props.items()) {
      CheckStructural(v, path + ".properties[" + k + "]", e, Level::kField);
    }
  }
  if (s.contains("additionalProperties")) {
    if (level == Level::kRoot) {
      e.list.push_back({"FieldValueForbidden", "Forbidden: must not be used at the root",
                        path + ".additionalProperties"});
    }
    if (Field(s, "additionalProperties").is_object()) {
      CheckStructural(s["additionalProperties"], path + ".additionalProperties", e, Level::kField);
    }
  }
  const Json& all_of = Field(s, "allOf");
  CheckValueValidation(s, IsIntOrStringAnyOf(Field(s, "anyOf")),
                       all_of.is_array() && !all_of.empty() &&
                           IsIntOrStringAnyOf(Field(all_of[0], "anyOf")),
                       path, e);
  bool typed = !Str(s, "type").empty() || Flag(s, "x-kubernetes-int-or-string") ||
               Flag(s, "x-kubernetes-preserve-unknown-fields");
  if (!typed) {
    e.Required(path + ".type", level == Level::kRoot   ? "must not be empty at the root"
                               : level == Level::kItem ? "must not be empty for specified array items"
                                                       : "must not be empty for specified object fields");
  }
  if (level == Level::kRoot && !Str(s, "type").empty() && Str(s, "type") != "object") {
    e.Invalid(path + ".type", GoQuote(Str(s, "type")), "must be object at the root");
  }
}

// Every field or array a junctor at the root speaks of is also specified
// outside of them (apiextensions' validateStructuralCompleteness).
void CheckNestedCompleteness(const Json& v, const Json* s, const std::string& s_path,
                             const std::string& v_path, Errs& e);

void CheckCompleteness(const Json& v, const Json* s, const std::string& s_path,
                       const std::string& v_path, Errs& e) {
  if (!v.is_object()) return;
  CheckNestedCompleteness(Field(v, "not"), s, s_path, v_path + ".not", e);
  for (const char* junctor : {"allOf", "anyOf", "oneOf"}) {
    const Json& list = Field(v, junctor);
    for (size_t i = 0; list.is_array() && i < list.size(); ++i) {
      CheckNestedCompleteness(list[i], s, s_path,
                              v_path + "." + junctor + "[" + std::to_string(i) + "]", e);
    }
  }
}

void CheckNestedCompleteness(const Json& v, const Json* s, const std::string& s_path,
                             const std::string& v_path, Errs& e) {
  if (!v.is_object()) return;
  if (s == nullptr || !s->is_object()) {
    e.Required(s_path, "because it is defined in " + v_path);
    return;
  }
  CheckCompleteness(v, s, s_path, v_path, e);
  if (v.contains("items")) {
    const Json& items = Field(*s, "items");
    CheckNestedCompleteness(v["items"], items.is_object() ? &items : nullptr, s_path + ".items",
                            v_path + ".items", e);
  }
  const Json& props = Field(v, "properties");
  const Json& s_props = Field(*s, "properties");
  if (props.is_object()) {
    for (const auto& [k, sub] : props.items()) {
      std::string key = ".properties[" + k + "]";
      if (s_props.is_object() && s_props.contains(k)) {
        CheckNestedCompleteness(sub, &s_props[k], s_path + key, v_path + key, e);
      } else {
        e.Required(s_path + key, "because it is defined in " + v_path + key);
      }
    }
  }
}

// uniqueItems, over every schema (junctors too), as the CRD's generic
// OpenAPI checks walk them.
void CheckUniqueItems(const Json& s, const std::string& path, Errs& e) {
  if (!s.is_object()) return;
  if (Field(s, "uniqueItems").is_boolean() && Flag(s, "uniqueItems")) {
    e.list.push_back({"FieldValueForbidden",
                      "Forbidden: uniqueItems cannot be set to true since the runtime complexity "
                      "becomes quadratic",
                      path + ".uniqueItems"});
  }
  for (const char* key : {"properties"}) {
    const Json& props = Field(s, key);
    if (!props.is_object()) continue;
    for (const auto& [k, v] : props.items()) CheckUniqueItems(v, path + ".properties[" + k + "]", e);
  }
  for (const char* key : {"items", "additionalProperties", "not"}) {
    if (Field(s, key).is_object()) CheckUniqueItems(s[key], path + "." + key, e);
  }
  for (const char* key : {"allOf", "anyOf", "oneOf"}) {
    const Json& list = Field(s, key);
    for (size_t i = 0; list.is_array() && i < list.size(); ++i) {
      CheckUniqueItems(list[i], path + "." + key + "[" + std::to_string(i) + "]", e);
    }
  }
}

// The schema of one CRD version: generic checks, then the structural
// ones sorted by their text, as upstream sorts them.
void CheckVersionSchema(const Json& schema, const std::string& path, Errs& e) {
  CheckUniqueItems(schema, path, e);
  Errs structural;
  CheckStructural(schema, path, structural, Level::kRoot);
  CheckCompleteness(schema, &schema, path, path, structural);
  std::stable_sort(structural.list.begin(), structural.list.end(),
                   [](const Cause& a, const Cause& b) {
                     return a.field + ": " + a.message < b.field + ": " + b.message;
                   });
  e.list.insert(e.list.end(), structural.list.begin(), structural.list.end());
}

bool HasKey(const Json& j, const std::string& key) {
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) {
      if (k == key || HasKey(v, key)) return true;
    }
  } else if (j.is_array()) {
    for (const auto& v : j) {
      if (HasKey(v, key)) return true;
    }
  }
  return false;
}

// kube-aware version order (GA, then beta, then alpha, each by major then
// minor version, highest first; then any other name): a larger key sorts first.
std::tuple<int, int, int, int> VersionKey(const std::string& v) {
  std::smatch m;
  static const std::regex re("^v([0-9]+)(?:(alpha|beta)([0-9]+))?$");
  if (!std::regex_match(v, m, re)) return {0, 0, 0, 0};
  int major = std::stoi(m[1]);
  int stage = m[2].matched ? (m[2] == "beta" ? 2 : 1) : 3;
  int minor = m[3].matched ? std::stoi(m[3]) : 0;
  return {1, stage, major, minor};
}

Json Condition(const std::string& type, const std::string& status, const std::string& reason,
               const std::string& message, const Json& old_conditions) {
  std::string when = NowRfc3339();
  for (const auto& c : old_conditions) {
    if (Str(c, "type") == type && Str(c, "status") == status) {
      when = Str(c, "lastTransitionTime");
    }
  }
  return {{"type", type},
          {"status", status},
          {"lastTransitionTime", when},
          {"reason", reason},
          {"message", message}};
}

// Which names of `crd` another served CRD of its group already holds. From
// the catalog, not the store: updates are prepared under the store's lock.
std::string NameConflict(const Json& crd) {
  const Json& spec = crd["spec"];
  const Json& names = spec["names"];
  std::string group = Str(spec, "group");
  std::string self = Str(crd["metadata"], "name");
  std::vector<std::shared_ptr<const Json>> others;
  {
    Catalog& c = TheCatalog();
    std::lock_guard lock(c.mu);
    for (const auto& [key, other] : c.crds) others.push_back(other);
  }
  for (const auto& op : others) {
    const Json& other = *op;
    if (Str(other["metadata"], "name") == self) continue;
    if (Str(other["spec"], "group") != group) continue;
    const Json& acc = Field(Field(other, "status"), "acceptedNames");
    for (const char* k : {"plural", "singular", "kind", "listKind"}) {
      if (!Str(names, k).empty() && Str(acc, k) == Str(names, k)) {
        return "\"" + Str(names, k) + "\" is already in use";
      }
    }
    for (const auto& s : Field(names, "shortNames")) {
      for (const auto& o : Field(acc, "shortNames")) {
        if (s == o && s.is_string()) return "\"" + s.get<std::string>() + "\" is already in use";
      }
    }
  }
  return "";
}

void ThrowInvalid(const Json& crd, const std::vector<Cause>& causes) {
  std::string name = Str(Field(crd, "metadata"), "name");
  std::vector<std::string> messages;
  std::set<std::string> seen;
  for (const auto& c : causes) {
    std::string m = c.field + ": " + c.message;
    if (seen.insert(m).second) messages.push_back(m);
  }
  std::string aggregate = messages.size() == 1 ? messages[0] : "[" + Join(messages, ", ") + "]";
  Error err = Error::Invalid("CustomResourceDefinition.apiextensions.k8s.io " + GoQuote(name) +
                             " is invalid: " + aggregate);
  err.WithDetails("CustomResourceDefinition", name, "apiextensions.k8s.io");
  for (const auto& c : causes) err.WithCause(c);
  throw err;
}

// A dotted JSONPath of the simple forms CRDs use: ".spec.replicas",
// ".status.conditions[0].type", ".status.conditions[?(@.type=="Ready")].status".
Json EvalJsonPath(const Json& obj, const std::string& path) {
  const Json* cur = &obj;
  size_t i = 0;
  if (!path.empty() && path[0] == '{') return EvalJsonPath(obj, path.substr(1, path.size() - 2));
  while (i < path.size()) {
    if (path[i] == '.') {
      ++i;
      size_t end = path.find_first_of(".[", i);
      std::string key = path.substr(i, end == std::string::npos ? std::string::npos : end - i);
      i = end == std::string::npos ? path.size() : end;
      if (key.empty()) continue;
      if (!cur->is_object() || !cur->contains(key)) return Json();
      cur = &(*cur)[key];
    } else if (path[i] == '[') {
      size_t end = path.find(']', i);
      if (end == std::string::npos) return Json();
      std::string inner = path.substr(i + 1, end - i - 1);
      i = end + 1;
      if (!cur->is_array()) return Json();
      static const std::regex filter(R"re(^\?\(@\.([A-Za-z0-9_]+)\s*==\s*["']([^"']*)["']\)$)re");
      std::smatch m;
      if (std::regex_match(inner, m, filter)) {
        const Json* found = nullptr;
        for (const auto& el : *cur) {
          if (Str(el, m[1].str().c_str()) == m[2].str()) {
            found = &el;
            break;
          }
        }
        if (found == nullptr) return Json();
        cur = found;
      } else {
        char* e = nullptr;
        long idx = std::strtol(inner.c_str(), &e, 10);
        if (*e != '\0') return Json();
        if (idx < 0) idx += static_cast<long>(cur->size());
        if (idx < 0 || static_cast<size_t>(idx) >= cur->size()) return Json();
        cur = &(*cur)[static_cast<size_t>(idx)];
      }
    } else {
      return Json();
    }
  }
  return *cur;
}

void SetJsonPath(Json& obj, const std::string& path, const Json& value) {
  Json* cur = &obj;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] != '.') return;
    ++i;
    size_t end = path.find('.', i);
    std::string key = path.substr(i, end == std::string::npos ? std::string::npos : end - i);
    i = end == std::string::npos ? path.size() : end;
    if (!cur->is_object()) *cur = Json::object();
    cur = &(*cur)[key];
  }
  *cur = value;
}

}  // namespace

bool IsCustomResourceDefinitions(const ResourceInfo& r) {
  return r.group == "apiextensions.k8s.io" && r.plural == "customresourcedefinitions";
}

// --- schemas --------------------------------------------------------------------

void ApplySchemaDefaults(const Json& schema, Json& value) {
  if (!schema.is_object()) return;
  if (value.is_object()) {
    const Json& props = Field(schema, "properties");
    if (props.is_object()) {
      for (const auto& [k, sub] : props.items()) {
        auto it = value.find(k);
        bool missing = it == value.end() || (it->is_null() && !Flag(sub, "nullable"));
        if (missing && sub.is_object() && sub.contains("default")) value[k] = sub["default"];
      }
    }
    for (auto& [k, v] : value.items()) {
      const Json* sub = PropertySchema(schema, k);
      if (sub != nullptr) ApplySchemaDefaults(*sub, v);
    }
  } else if (value.is_array()) {
    const Json& items = Field(schema, "items");
    for (auto& v : value) ApplySchemaDefaults(items, v);
  }
}

void PruneUnknownFields(const Json& schema, Json& value, const std::string& path,
                        std::vector<std::string>* pruned, bool root) {
  if (!schema.is_object()) return;
  if (value.is_object()) {
    bool preserve = PreservesUnknown(schema);
    bool embedded = Flag(schema, "x-kubernetes-embedded-resource");
    std::vector<std::string> drop;
    for (auto& [k, v] : value.items()) {
      // The type and object meta of the root and of embedded resources are
      // not the schema's (metadata is ObjectMeta's).
      if ((root || embedded) && (k == "apiVersion" || k == "kind" || k == "metadata")) continue;
      const Json* sub = PropertySchema(schema, k);
      if (sub == nullptr) {
        if (!preserve) drop.push_back(k);
        continue;
      }
      PruneUnknownFields(*sub, v, Join2(path, k), pruned);
    }
    for (const auto& k : drop) {
      value.erase(k);
      if (pruned) pruned->push_back(Join2(path, k));
    }
  } else if (value.is_array()) {
    const Json& items = Field(schema, "items");
    for (size_t i = 0; i < value.size(); ++i) {
      PruneUnknownFields(items, value[i], path + "[" + std::to_string(i) + "]", pruned);
    }
  }
}

std::vector<SchemaError> ValidateAgainstSchema(const Json& schema, const Json& value,
                                               const std::string& path) {
  return Validate(schema, value, path).errors;
}

// --- the CRD object ---------------------------------------------------------------

std::vector<Cause> CustomResourceDefinitionErrors(const Json& crd, const Json* old) {
  Errs e;
  const Json& spec = Field(crd, "spec");
  const Json& names = Field(spec, "names");
  std::string group = Str(spec, "group");
  std::string plural = Str(names, "plural");
  std::string name = Str(Field(crd, "metadata"), "name");
  if (!plural.empty() && !group.empty() && name != plural + "." + group) {
    e.Invalid("metadata.name", GoQuote(name), "must be spec.names.plural+\".\"+spec.group");
  }
  if (group.empty()) {
    e.Required("spec.group");
  } else {
    auto problems = IsDNS1123Subdomain(group);
    if (!problems.empty()) e.Invalid("spec.group", GoQuote(group), Join(problems, ","));
    if (group.find('.') == std::string::npos) {
      e.Invalid("spec.group", GoQuote(group), "should be a domain with at least one dot");
    }
  }
  std::string scope = Str(spec, "scope");
  if (scope.empty()) {
    e.Required("spec.scope");
  } else if (scope != "Cluster" && scope != "Namespaced") {
    e.NotSupported("spec.scope", scope, "\"Cluster\", \"Namespaced\"");
  }
  // Names.
  if (plural.empty()) {
    e.Required("spec.names.plural");
  } else {
    CheckDns1035(e, "spec.names.plural", plural);
  }
  std::string singular = Str(names, "singular");
  if (singular.empty()) {
    e.Required("spec.names.singular");
  } else {
    CheckDns1035(e, "spec.names.singular", singular);
  }
  std::string kind = Str(names, "kind");
  std::string list_kind = Str(names, "listKind");
  if (kind.empty()) {
    e.Required("spec.names.kind");
  } else {
    CheckDns1035(e, "spec.names.kind", Lower(kind));
  }
  if (list_kind.empty()) {
    e.Required("spec.names.listKind");
  } else {
    CheckDns1035(e, "spec.names.listKind", Lower(list_kind));
    if (list_kind == kind) {
      e.Invalid("spec.names.listKind", GoQuote(list_kind), "kind and listKind may not be the same");
    }
  }
  const Json& shorts = Field(names, "shortNames");
  for (size_t i = 0; shorts.is_array() && i < shorts.size(); ++i) {
    if (shorts[i].is_string()) {
      CheckDns1035(e, "spec.names.shortNames[" + std::to_string(i) + "]", shorts[i]);
    }
  }
  const Json& cats = Field(names, "categories");
  for (size_t i = 0; cats.is_array() && i < cats.size(); ++i) {
    if (cats[i].is_string()) {
      CheckDns1035(e, "spec.names.categories[" + std::to_string(i) + "]", cats[i]);
    }
  }
  // Versions.
  const Json& versions = Field(spec, "versions");
  if (!versions.is_array() || versions.empty()) {
    e.Invalid("spec.versions", "null", "must have exactly one version marked as storage version");
  } else {
    int storage = 0;
    std::set<std::string> seen;
    for (size_t i = 0; i < versions.size(); ++i) {
      const Json& v = versions[i];
      std::string f = "spec.versions[" + std::to_string(i) + "]";
      std::string vname = Str(v, "name");
      if (vname.empty()) {
        e.Required(f + ".name");
      } else {
        CheckDns1035(e, f + ".name", vname);
        if (!seen.insert(vname).second) {
          e.list.push_back({"FieldValueDuplicate", "Duplicate value: " + GoQuote(vname), f + ".name"});
        }
      }
      if (Flag(v, "storage")) ++storage;
      const Json& schema = Field(Field(v, "schema"), "openAPIV3Schema");
      if (!schema.is_object()) {
        e.Required(f + ".schema.openAPIV3Schema", "schemas are required");
      } else {
        CheckVersionSchema(schema, f + ".schema.openAPIV3Schema", e);
      }
      const Json& subs = Field(v, "subresources");
      const Json& scale = Field(subs, "scale");
      if (scale.is_object()) {
        for (const char* p : {"specReplicasPath", "statusReplicasPath"}) {
          std::string val = Str(scale, p);
          if (val.empty()) {
            e.Required(f + ".subresources.scale." + p);
          } else if (val.rfind(".spec.", 0) != 0 && std::string(p) == "specReplicasPath") {
            e.Invalid(f + ".subresources.scale." + p, GoQuote(val),
                      "should be a json path under .spec");
          } else if (val.rfind(".status.", 0) != 0 && std::string(p) == "statusReplicasPath") {
            e.Invalid(f + ".subresources.scale." + p, GoQuote(val),
                      "should be a json path under .status");
          }
        }
      }
      const Json& cols = Field(v, "additionalPrinterColumns");
      for (size_t c = 0; cols.is_array() && c < cols.size(); ++c) {
        std::string cf = f + ".additionalPrinterColumns[" + std::to_string(c) + "]";
        if (Str(cols[c], "name").empty()) e.Required(cf + ".name");
        if (Str(cols[c], "jsonPath").empty()) e.Required(cf + ".jsonPath");
        std::string type = Str(cols[c], "type");
        static const std::set<std::string> kTypes = {"integer", "number", "string", "boolean",
                                                     "date"};
        if (type.empty()) {
          e.Required(cf + ".type");
        } else if (!kTypes.count(type)) {
          e.NotSupported(cf + ".type", type,
                         "\"boolean\", \"date\", \"integer\", \"number\", \"string\"");
        }
      }
    }
    if (storage != 1) {
      e.Invalid("spec.versions", "[]apiextensions.CustomResourceDefinitionVersion{...}",
                "must have exactly one version marked as storage version");
    }
  }
  const Json& conversion = Field(spec, "conversion");
  std::string strategy = Str(conversion, "strategy");
  if (!strategy.empty() && strategy != "None") {
    if (strategy == "Webhook") {
      e.list.push_back({"FieldValueForbidden",
                        "Forbidden: conversion webhooks are not supported by kin",
                        "spec.conversion.strategy"});
    } else {
      e.NotSupported("spec.conversion.strategy", strategy, "\"None\", \"Webhook\"");
    }
  }
  if (old != nullptr) {
    const Json& os = Field(*old, "spec");
    if (Str(os, "group") != group) {
      e.Invalid("spec.group", GoQuote(group), "field is immutable");
    }
    if (Str(os, "scope") != scope) {
      e.Invalid("spec.scope", GoQuote(scope), "field is immutable");
    }
  }
  return e.list;
}

std::vector<std::string> CustomResourceDefinitionWarnings(const Json& crd) {
  if (!HasKey(Field(crd, "spec"), "x-kubernetes-validations")) return {};
  return {
      "x-kubernetes-validations (CEL) rules are accepted but not enforced by kin"};
}

void PrepareCustomResourceDefinition(Json& crd, const Json* old) {
  Json& spec = crd["spec"];
  if (spec.is_object()) {
    Json& names = spec["names"];
    if (names.is_object()) {
      std::string kind = Str(names, "kind");
      if (Str(names, "singular").empty() && !kind.empty()) names["singular"] = Lower(kind);
      if (Str(names, "listKind").empty() && !kind.empty()) names["listKind"] = kind + "List";
    }
    if (!spec.contains("conversion") || !spec["conversion"].is_object()) {
      spec["conversion"] = {{"strategy", "None"}};
    }
  }
  std::vector<Cause> causes = CustomResourceDefinitionErrors(crd, old);
  if (!causes.empty()) ThrowInvalid(crd, causes);
  // The cleanup finalizer, as the CRD strategy adds it on create.
  Json& meta = crd["metadata"];
  if (old == nullptr) {
    Json& fins = meta["finalizers"];
    if (!fins.is_array()) fins = Json::array();
    if (std::find(fins.begin(), fins.end(), kCrdCleanupFinalizer) == fins.end()) {
      fins.push_back(kCrdCleanupFinalizer);
    }
  }
  // Status: what the naming and establishing controllers write.
  Json status = old != nullptr && old->contains("status") ? (*old)["status"] : Json::object();
  if (!status.is_object()) status = Json::object();
  Json old_conditions = Field(status, "conditions");
  if (!old_conditions.is_array()) old_conditions = Json::array();
  std::string conflict = NameConflict(crd);
  Json conditions = Json::array();
  for (const auto& c : old_conditions) {
    std::string t = Str(c, "type");
    if (t != "NamesAccepted" && t != "Established" && t != "Terminating") conditions.push_back(c);
  }
  const Json& names = spec["names"];
  if (conflict.empty()) {
    Json accepted = {{"plural", names["plural"]},
                     {"singular", names["singular"]},
                     {"kind", names["kind"]},
                     {"listKind", names["listKind"]}};
    if (names.contains("shortNames")) accepted["shortNames"] = names["shortNames"];
    if (names.contains("categories")) accepted["categories"] = names["categories"];
    status["acceptedNames"] = accepted;
    conditions.push_back(
        Condition("NamesAccepted", "True", "NoConflicts", "no conflicts found", old_conditions));
    conditions.push_back(Condition("Established", "True", "InitialNamesAccepted",
                                   "the initial names have been accepted", old_conditions));
  } else {
    if (!status.contains("acceptedNames")) {
      status["acceptedNames"] = {{"plural", ""}, {"kind", ""}};
    }
    conditions.push_back(
        Condition("NamesAccepted", "False", "NameConflict", conflict, old_conditions));
    conditions.push_back(Condition("Established", "False", "NotAccepted",
                                   "not all names are accepted", old_conditions));
  }
  for (const auto& c : old_conditions) {
    if (Str(c, "type") == "Terminating") conditions.push_back(c);
  }
  status["conditions"] = conditions;
  Json stored = Field(status, "storedVersions");
  if (!stored.is_array()) stored = Json::array();
  for (const auto& v : spec["versions"]) {
    if (Flag(v, "storage") && std::find(stored.begin(), stored.end(), v["name"]) == stored.end()) {
      stored.push_back(v["name"]);
    }
  }
  status["storedVersions"] = stored;
  crd["status"] = status;
}

void SyncCustomResources(const Store& store) {
  std::vector<ResourceInfo> infos;
  std::map<std::string, std::shared_ptr<const Json>> crds;
  for (const Record& rec : store.List(kCrdBucket, "", nullptr).items) {
    auto crd = std::make_shared<const Json>(rec.Parse());
    bool established = false;
    for (const auto& c : Field(Field(*crd, "status"), "conditions")) {
      if (Str(c, "type") == "Established" && Str(c, "status") == "True") established = true;
    }
    if (!established) continue;
    const Json& spec = (*crd)["spec"];
    const Json& names = Field(Field(*crd, "status"), "acceptedNames");
    std::string storage;
    for (const auto& v : spec["versions"]) {
      if (Flag(v, "storage")) storage = Str(v, "name");
    }
    ResourceInfo base;
    base.group = Str(spec, "group");
    base.kind = Str(names, "kind");
    base.plural = Str(names, "plural");
    base.singular = Str(names, "singular");
    base.namespaced = Str(spec, "scope") == "Namespaced";
    for (const auto& s : Field(names, "shortNames")) base.short_names.push_back(s);
    for (const auto& s : Field(names, "categories")) base.categories.push_back(s);
    base.verbs = {"delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"};
    base.custom = true;
    base.storage_version = storage;
    // Served versions, highest priority first (discovery's preferred one).
    std::vector<const Json*> served;
    for (const auto& v : spec["versions"]) {
      if (Flag(v, "served")) served.push_back(&v);
    }
    std::stable_sort(served.begin(), served.end(), [](const Json* a, const Json* b) {
      return VersionKey(Str(*a, "name")) > VersionKey(Str(*b, "name"));
    });
    for (const Json* v : served) {
      ResourceInfo r = base;
      r.version = Str(*v, "name");
      const Json& subs = Field(*v, "subresources");
      if (Field(subs, "status").is_object()) r.subresources.push_back("status");
      if (Field(subs, "scale").is_object()) r.subresources.push_back("scale");
      infos.push_back(std::move(r));
    }
    crds[base.group_resource()] = crd;
  }
  {
    Catalog& c = TheCatalog();
    std::lock_guard lock(c.mu);
    c.crds = std::move(crds);
  }
  SetCustomResources(std::move(infos));
}

void FinalizeCustomResourceDefinitions(Registry& registry) {
  // Deleting the objects below comes back here through the registry.
  thread_local bool running = false;
  if (running) return;
  running = true;
  struct Reset {
    ~Reset() { running = false; }
  } reset;
  Store& store = registry.store();
  for (const Record& rec : store.List(kCrdBucket, "", nullptr).items) {
    Json crd = rec.Parse();
    const Json& meta = crd["metadata"];
    if (!meta.contains("deletionTimestamp") || meta["deletionTimestamp"].is_null()) continue;
    const Json& fins = Field(meta, "finalizers");
    if (!fins.is_array() ||
        std::find(fins.begin(), fins.end(), kCrdCleanupFinalizer) == fins.end()) {
      continue;
    }
    const Json& spec = crd["spec"];
    std::string group = Str(spec, "group");
    std::string plural = Str(spec["names"], "plural");
    std::string bucket = plural + "." + group;
    const ResourceInfo* r = nullptr;
    for (const auto& v : spec["versions"]) {
      if (r == nullptr) r = FindResource(group, Str(v, "name"), plural);
    }
    size_t left = 0;
    if (r != nullptr) {
      DeleteOptions del;
      for (const Record& item : store.List(bucket, "", nullptr).items) {
        try {
          Json out = registry.Delete(*r, item.ns, item.name, del);
          if (store.Get(bucket, item.ns, item.name)) ++left;
        } catch (const Error& e) {
          if (e.code() != Code::kNotFound) ++left;
        }
      }
    } else {
      left = store.Count(bucket);
    }
    // Terminating condition, then (with nothing left) the finalizer goes.
    store.Mutate(kCrdBucket, "", rec.name, [&](const Json* cur) -> Mutation {
      if (cur == nullptr) return Mutation{};
      Json next = *cur;
      Json& conds = next["status"]["conditions"];
      if (!conds.is_array()) conds = Json::array();
      Json kept = Json::array();
      for (const auto& c : conds) {
        if (Str(c, "type") != "Terminating") kept.push_back(c);
      }
      kept.push_back(Condition("Terminating", "True",
                               left == 0 ? "InstanceDeletionCompleted" : "InstanceDeletionInProgress",
                               left == 0 ? "removed all instances"
                                         : "CustomResource deletion is in progress",
                               conds));
      conds = kept;
      if (left == 0) {
        Json f = Json::array();
        for (const auto& x : next["metadata"].value("finalizers", Json::array())) {
          if (x != kCrdCleanupFinalizer) f.push_back(x);
        }
        if (f.empty()) return Mutation{Mutation::Action::kDelete, {}};
        next["metadata"]["finalizers"] = f;
      }
      if (next == *cur) return Mutation{};
      return Mutation{Mutation::Action::kPut, next};
    });
  }
  SyncCustomResources(store);
}

bool CustomResourceDefinitionTerminating(const ResourceInfo& r) {
  auto crd = CrdFor(r);
  if (crd == nullptr) return false;
  const Json& meta = Field(*crd, "metadata");
  return meta.contains("deletionTimestamp") && !meta["deletionTimestamp"].is_null();
}

// --- custom resources ----------------------------------------------------------------

void PrepareCustomResource(const ResourceInfo& r, Json& obj, const Json* old) {
  auto crd = CrdFor(r);
  if (crd == nullptr) {
    throw Error::NotFound("the server could not find the requested resource");
  }
  const Json& cmeta = (*crd)["metadata"];
  if (old == nullptr && cmeta.contains("deletionTimestamp") && !cmeta["deletionTimestamp"].is_null()) {
    throw Error::MethodNotAllowed("create not allowed while custom resource definition is terminating");
  }
  Json schema = SchemaOf(*crd, r.version);
  if (schema.is_object()) {
    ApplySchemaDefaults(schema, obj);
    PruneUnknownFields(schema, obj, "", nullptr, /*root=*/true);
    std::vector<SchemaError> errs = ValidateAgainstSchema(schema, obj, "");
    // The root's metadata is ObjectMeta: its name must be a DNS subdomain
    // (registry's metadata checks); the schema checks the rest.
    if (!errs.empty()) {
      std::string name = Str(Field(obj, "metadata"), "name");
      std::vector<std::string> messages;
      std::set<std::string> seen;
      for (const auto& e : errs) {
        std::string m = e.field + ": " + e.message;
        if (seen.insert(m).second) messages.push_back(m);
      }
      std::string aggregate =
          messages.size() == 1 ? messages[0] : "[" + Join(messages, ", ") + "]";
      Error err = Error::Invalid(r.kind + "." + r.group + " " + GoQuote(name) +
                                 " is invalid: " + aggregate);
      err.WithDetails(r.kind, name, r.group);
      for (const auto& e : errs) err.WithCause({e.reason, e.message, e.field});
      throw err;
    }
  }
  obj["apiVersion"] = r.group + "/" + (r.storage_version.empty() ? r.version : r.storage_version);
}

Json ToServedVersion(const ResourceInfo& r, Json obj) {
  if (r.custom && obj.is_object() && obj.contains("apiVersion")) obj["apiVersion"] = r.api_version();
  return obj;
}

std::vector<std::string> CustomResourceUnknownFieldErrors(const ResourceInfo& r, const Json& obj) {
  auto crd = CrdFor(r);
  if (crd == nullptr) return {};
  Json schema = SchemaOf(*crd, r.version);
  if (!schema.is_object()) return {};
  Json copy = obj;
  std::vector<std::string> pruned;
  PruneUnknownFields(schema, copy, "", &pruned, /*root=*/true);
  std::vector<std::string> out;
  for (const auto& p : pruned) out.push_back("unknown field " + GoQuote(p));
  return out;
}

Json CustomResourceSchema(const ResourceInfo& r) {
  auto crd = CrdFor(r);
  return crd ? SchemaOf(*crd, r.version) : Json();
}

namespace {

Json ScaleSpec(const ResourceInfo& r) {
  auto crd = CrdFor(r);
  if (!crd) return Json::object();
  const Json* v = VersionOf(*crd, r.version);
  return v ? Field(Field(*v, "subresources"), "scale") : Json::object();
}

}  // namespace

Json CustomResourceScale(const ResourceInfo& r, const Json& obj) {
  Json scale = ScaleSpec(r);
  const Json& m = obj["metadata"];
  Json spec_replicas = EvalJsonPath(obj, Str(scale, "specReplicasPath"));
  Json status_replicas = EvalJsonPath(obj, Str(scale, "statusReplicasPath"));
  Json status = {{"replicas", status_replicas.is_number() ? status_replicas : Json(0)}};
  std::string sel_path = Str(scale, "labelSelectorPath");
  if (!sel_path.empty()) {
    Json sel = EvalJsonPath(obj, sel_path);
    if (sel.is_string()) status["selector"] = sel;
  }
  Json meta = {{"name", m["name"]},
               {"uid", m["uid"]},
               {"resourceVersion", m["resourceVersion"]},
               {"creationTimestamp", m["creationTimestamp"]}};
  if (m.contains("namespace")) meta["namespace"] = m["namespace"];
  return {{"kind", "Scale"},
          {"apiVersion", "autoscaling/v1"},
          {"metadata", meta},
          {"spec", {{"replicas", spec_replicas.is_number() ? spec_replicas : Json(0)}}},
          {"status", status}};
}

void SetCustomResourceReplicas(const ResourceInfo& r, Json& obj, int64_t replicas) {
  Json scale = ScaleSpec(r);
  std::string path = Str(scale, "specReplicasPath");
  if (path.empty()) path = ".spec.replicas";
  SetJsonPath(obj, path, replicas);
}

void CustomizeTable(const ResourceInfo& r, const std::vector<Json>& objs, Json& table,
                    std::chrono::system_clock::time_point now) {
  auto crd = CrdFor(r);
  Json cols = Json::array();
  if (crd) {
    const Json* v = VersionOf(*crd, r.version);
    if (v) cols = Field(*v, "additionalPrinterColumns");
    if (!cols.is_array()) cols = Json::array();
  }
  if (cols.empty()) {
    cols.push_back({{"name", "Age"},
                    {"type", "date"},
                    {"jsonPath", ".metadata.creationTimestamp"},
                    {"description",
                     "CreationTimestamp is a timestamp representing the server time when this "
                     "object was created."}});
  }
  if (!table["columnDefinitions"].is_null()) {
    Json defs = Json::array();
    defs.push_back({{"name", "Name"},
                    {"type", "string"},
                    {"format", "name"},
                    {"description",
                     "Name must be unique within a namespace. More info: "
                     "https://kubernetes.io/docs/concepts/overview/working-with-objects/"
                     "names#names"},
                    {"priority", 0}});
    for (const auto& c : cols) {
      defs.push_back({{"name", c.value("name", "")},
                      {"type", c.value("type", "string")},
                      {"format", c.value("format", "")},
                      {"description", c.value("description", "")},
                      {"priority", c.value("priority", 0)}});
    }
    table["columnDefinitions"] = defs;
  }
  for (size_t i = 0; i < objs.size() && i < table["rows"].size(); ++i) {
    Json cells = Json::array();
    cells.push_back(Str(Field(objs[i], "metadata"), "name"));
    for (const auto& c : cols) {
      Json v = EvalJsonPath(objs[i], c.value("jsonPath", ""));
      std::string type = c.value("type", "string");
      if (v.is_null()) {
        cells.push_back(nullptr);
      } else if (type == "date" && v.is_string()) {
        struct tm tm {};
        std::string s = v.get<std::string>();
        if (strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) != nullptr) {
          auto t = std::chrono::system_clock::from_time_t(timegm(&tm));
          cells.push_back(HumanDuration(std::chrono::duration_cast<std::chrono::seconds>(now - t)));
        } else {
          cells.push_back(v);
        }
      } else if (type == "integer" && v.is_number()) {
        cells.push_back(static_cast<int64_t>(v.get<double>()));
      } else if (type == "string" && !v.is_string()) {
        cells.push_back(v.is_primitive() ? v.dump() : v.dump());
      } else {
        cells.push_back(v);
      }
    }
    table["rows"][i]["cells"] = cells;
  }
}

// --- OpenAPI v3 ------------------------------------------------------------------

namespace {

// "example.com" -> "com.example": upstream's definition name prefix.
std::string ReversedGroup(const std::string& group) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t dot = group.find('.', start);
    parts.push_back(group.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  std::reverse(parts.begin(), parts.end());
  return Join(parts, ".");
}

// A v2-style definition ("$ref": "io.k8s...") as a v3 one.
Json V3Refs(const Json& j) {
  if (j.is_object()) {
    Json out = Json::object();
    for (const auto& [k, v] : j.items()) {
      if (k == "$ref" && v.is_string()) {
        out[k] = "#/components/schemas/" + v.get<std::string>();
      } else {
        out[k] = V3Refs(v);
      }
    }
    return out;
  }
  if (j.is_array()) {
    Json out = Json::array();
    for (const auto& v : j) out.push_back(V3Refs(v));
    return out;
  }
  return j;
}

void CollectDefinitions(const std::string& name, Json& schemas) {
  if (schemas.contains(name)) return;
  const Json& defs = SchemaDefinitions();
  auto it = defs.find(name);
  if (it == defs.end()) return;
  schemas[name] = V3Refs(*it);
  std::vector<std::string> refs;
  std::function<void(const Json&)> walk = [&](const Json& j) {
    if (j.is_object()) {
      for (const auto& [k, v] : j.items()) {
        if (k == "$ref" && v.is_string()) {
          refs.push_back(v.get<std::string>());
        } else {
          walk(v);
        }
      }
    } else if (j.is_array()) {
      for (const auto& v : j) walk(v);
    }
  };
  walk(*it);
  for (const auto& r : refs) CollectDefinitions(r, schemas);
}

Json ParamJson(const char* name, const char* in, const char* type,
               const std::string& description) {
  Json p = {{"name", name},
            {"in", in},
            {"description", description},
            {"schema", {{"type", type}, {"uniqueItems", true}}}};
  if (std::string(in) == "path") p["required"] = true;
  return p;
}

std::string Fnv1aHex(const std::string& s) {
  uint64_t h = 14695981039346656037ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[17];
  snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

Json BuildV3Document(const std::string& group, const std::string& version) {
  const std::string object_meta = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
  const std::string list_meta = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
  Json schemas = Json::object();
  CollectDefinitions(object_meta, schemas);
  CollectDefinitions(list_meta, schemas);
  CollectDefinitions("io.k8s.apimachinery.pkg.apis.meta.v1.Status", schemas);
  CollectDefinitions("io.k8s.apimachinery.pkg.apis.meta.v1.Patch", schemas);
  CollectDefinitions("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions", schemas);
  Json paths = Json::object();
  for (const ResourceInfo* r : CustomResources()) {
    if (r->group != group || r->version != version) continue;
    const std::string def = ReversedGroup(group) + "." + version + "." + r->kind;
    const Json gvk = {{"group", group}, {"version", version}, {"kind", r->kind}};
    Json schema = CustomResourceSchema(*r);
    if (!schema.is_object()) schema = {{"type", "object"}};
    Json& props = schema["properties"];
    if (!props.is_object()) props = Json::object();
    props["apiVersion"] = {{"type", "string"},
                           {"description",
                            "APIVersion defines the versioned schema of this representation of "
                            "an object."}};
    props["kind"] = {{"type", "string"},
                     {"description",
                      "Kind is a string value representing the REST resource this object "
                      "represents."}};
    props["metadata"] = {{"allOf", {{{"$ref", "#/components/schemas/" + object_meta}}}},
                         {"description", "Standard object's metadata."}};
    schema["x-kubernetes-group-version-kind"] = Json::array({gvk});
    schemas[def] = schema;
    Json list_gvk = {{"group", group}, {"version", version}, {"kind", r->list_kind()}};
    schemas[def + "List"] = {
        {"type", "object"},
        {"description", r->kind + "List is a list of " + r->kind},
        {"required", {"items"}},
        {"properties",
         {{"apiVersion", props["apiVersion"]},
          {"kind", props["kind"]},
          {"items", {{"type", "array"}, {"items", {{"$ref", "#/components/schemas/" + def}}}}},
          {"metadata", {{"allOf", {{{"$ref", "#/components/schemas/" + list_meta}}}}}}}},
        {"x-kubernetes-group-version-kind", Json::array({list_gvk})}};
    auto content = [](const std::string& ref) {
      return Json{{"application/json", {{"schema", {{"$ref", "#/components/schemas/" + ref}}}}}};
    };
    auto op = [&](const std::string& action, const std::string& id, const Json& params,
                  const std::string& ref, bool body) {
      Json o = {{"tags", {ReversedGroup(group) + "_" + version}},
                {"operationId", id},
                {"parameters", params},
                {"responses", {{"200", {{"description", "OK"}, {"content", content(ref)}}}}},
                {"x-kubernetes-action", action},
                {"x-kubernetes-group-version-kind", gvk}};
      if (body) {
        Json patch_schema = {
            {"schema",
             {{"$ref", "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}}}};
        Json c = content(ref);
        if (action == "patch") {
          // No strategic merge: kubectl then sends merge patches, as upstream.
          c = Json::object();
          for (const char* media : {"application/merge-patch+json", "application/json-patch+json",
                                    "application/apply-patch+yaml"}) {
            c[media] = patch_schema;
          }
        }
        o["requestBody"] = {{"content", c}, {"required", true}};
      }
      return o;
    };
    Json write_params = Json::array(
        {ParamJson("dryRun", "query", "string", "When present, indicates that modifications "
                                                "should not be persisted."),
         ParamJson("fieldManager", "query", "string",
                   "fieldManager is a name associated with the actor or entity that is making "
                   "these changes."),
         ParamJson("fieldValidation", "query", "string",
                   "fieldValidation instructs the server on how to handle objects in the "
                   "request (POST/PUT/PATCH) containing unknown or duplicate fields.")});
    Json patch_params = write_params;
    patch_params.push_back(ParamJson("force", "query", "boolean",
                                     "Force is going to \"force\" Apply requests."));
    Json scope = Json::array({ParamJson("name", "path", "string", "name of the " + r->kind)});
    if (r->namespaced) {
      scope.push_back(ParamJson("namespace", "path", "string",
                                "object name and auth scope, such as for teams and projects"));
    }
    const std::string base = "/apis/" + group + "/" + version +
                             (r->namespaced ? "/namespaces/{namespace}/" : "/") + r->plural;
    const std::string id = (r->namespaced ? "Namespaced" : "") + r->kind;
    Json collection_scope = Json::array();
    if (r->namespaced) collection_scope.push_back(scope[1]);
    paths[base] = {{"parameters", collection_scope},
                   {"get", op("list", "list" + id, Json::array(), def + "List", false)},
                   {"post", op("post", "create" + id, write_params, def, true)}};
    paths[base + "/{name}"] = {{"parameters", scope},
                               {"get", op("get", "read" + id, Json::array(), def, false)},
                               {"put", op("put", "replace" + id, write_params, def, true)},
                               {"patch", op("patch", "patch" + id, patch_params, def, true)}};
    for (const auto& sub : r->subresources) {
      paths[base + "/{name}/" + sub] = {
          {"parameters", scope},
          {"get", op("get", "read" + id + sub, Json::array(), def, false)},
          {"put", op("put", "replace" + id + sub, write_params, def, true)},
          {"patch", op("patch", "patch" + id + sub, patch_params, def, true)}};
    }
  }
  return {{"openapi", "3.0.0"},
          {"info", {{"title", "Kubernetes CRD Swagger"}, {"version", "v0.1.0"}}},
          {"paths", paths},
          {"components", {{"schemas", schemas}}}};
}

}  // namespace

std::vector<std::pair<std::string, std::string>> CustomOpenApiV3Index() {
  std::vector<std::pair<std::string, std::string>> out;
  std::set<std::string> static_gvs;
  for (const auto& r : AllResources()) static_gvs.insert(r.group + "/" + r.version);
  for (const ResourceInfo* r : CustomResources()) {
    std::string gv = "apis/" + r->group + "/" + r->version;
    if (static_gvs.count(r->group + "/" + r->version)) continue;
    if (std::any_of(out.begin(), out.end(), [&](auto& e) { return e.first == gv; })) continue;
    out.push_back({gv, Fnv1aHex(CustomOpenApiV3Document(gv))});
  }
  return out;
}

std::string CustomOpenApiV3Document(const std::string& gv_path) {
  std::string p = gv_path;
  if (!p.empty() && p[0] == '/') p = p.substr(1);
  if (p.rfind("apis/", 0) != 0) return "";
  std::string rest = p.substr(5);
  size_t slash = rest.find('/');
  if (slash == std::string::npos) return "";
  std::string group = rest.substr(0, slash), version = rest.substr(slash + 1);
  bool any = false;
  for (const ResourceInfo* r : CustomResources()) {
    if (r->group == group && r->version == version) any = true;
  }
  if (!any) return "";
  return BuildV3Document(group, version).dump();
}

}  // namespace kin::apiserver
