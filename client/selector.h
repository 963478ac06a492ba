// Label and field selectors, as Kubernetes parses and matches them.
//
// LabelSelector::Parse reads the string form of ?labelSelector=
// (`app=web,tier!=db,env in (a,b),!legacy,release`), FromJson the
// metav1.LabelSelector object (matchLabels, matchExpressions). An empty
// selector matches everything. FieldSelector::Parse reads ?fieldSelector=
// (`metadata.name=x,status.phase!=Running`). Parse errors are kin::Error
// BadRequest naming the bad part. Thread-safe once built (immutable).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/yaml.h"  // Json

namespace kin {

struct LabelRequirement {
  enum class Op { kEquals, kNotEquals, kIn, kNotIn, kExists, kDoesNotExist, kGt, kLt };
  std::string key;
  Op op;
  std::vector<std::string> values;
};

class LabelSelector {
 public:
  LabelSelector() = default;
  static LabelSelector Parse(std::string_view text);
  // metav1.LabelSelector; `field` names it in errors (e.g. "spec.selector").
  static LabelSelector FromJson(const Json& selector, const std::string& field = "selector");

  bool empty() const { return reqs_.empty(); }
  // `labels` is metadata.labels (an object, or null).
  bool Matches(const Json& labels) const;
  const std::vector<LabelRequirement>& requirements() const { return reqs_; }
  std::string ToString() const;

 private:
  std::vector<LabelRequirement> reqs_;
};

struct FieldRequirement {
  std::string field;  // dotted path, e.g. "spec.nodeName"
  bool negate = false;
  std::string value;
};

class FieldSelector {
 public:
  static FieldSelector Parse(std::string_view text);
  bool empty() const { return reqs_.empty(); }
  // Missing fields read as "" (as in Kubernetes field sets).
  bool Matches(const Json& obj) const;
  const std::vector<FieldRequirement>& requirements() const { return reqs_; }
  // The value a "metadata.name=" term pins, or "" (watches of one object).
  std::string PinnedName() const;

 private:
  std::vector<FieldRequirement> reqs_;
};

// The value at a dotted path ("involvedObject.name"), as a string the way
// field selectors see it: strings as-is, numbers and bools printed, else "".
std::string FieldValue(const Json& obj, std::string_view path);

// Validity of label keys and values (qualified names, ≤63 chars, ...);
// return an empty string when valid, else the Kubernetes message.
std::string LabelKeyError(std::string_view key);
std::string LabelValueError(std::string_view value);

}  // namespace kin
