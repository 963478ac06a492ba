#include "client/selector.h"

#include <cctype>
#include <cstdlib>
#include <regex>

#include "base/error.h"

namespace kin {

namespace {

bool IsNameChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
}

std::string Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(" \t");
  return std::string(s.substr(b, e - b + 1));
}

// Splits on commas that are not inside parentheses.
std::vector<std::string> SplitTerms(std::string_view text) {
  std::vector<std::string> out;
  int depth = 0;
  std::string cur;
  for (char c : text) {
    if (c == '(') depth++;
    if (c == ')') depth--;
    if (c == ',' && depth == 0) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

Error ParseError(std::string_view term, const std::string& why) {
  return Error::BadRequest("unable to parse requirement: \"" + std::string(term) + "\": " + why);
}

void CheckKey(std::string_view term, const std::string& key) {
  std::string err = LabelKeyError(key);
  if (!err.empty()) throw ParseError(term, "invalid label key \"" + key + "\": " + err);
}

void CheckValue(std::string_view term, const std::string& value) {
  std::string err = LabelValueError(value);
  if (!err.empty()) throw ParseError(term, "invalid label value: \"" + value + "\": " + err);
}

LabelRequirement ParseTerm(std::string_view raw) {
  std::string term = Trim(raw);
  if (term.empty()) throw Error::BadRequest("unable to parse requirement: empty requirement");
  LabelRequirement r;
  if (term[0] == '!') {
    r.key = Trim(std::string_view(term).substr(1));
    r.op = LabelRequirement::Op::kDoesNotExist;
    CheckKey(term, r.key);
    return r;
  }
  size_t i = 0;
  while (i < term.size() && (IsNameChar(term[i]) || term[i] == '/')) ++i;
  r.key = term.substr(0, i);
  CheckKey(term, r.key);
  std::string rest = Trim(std::string_view(term).substr(i));
  if (rest.empty()) {
    r.op = LabelRequirement::Op::kExists;
    return r;
  }
  auto set_values = [&](std::string_view list) {
    std::string l = Trim(list);
    if (l.size() < 2 || l.front() != '(' || l.back() != ')') {
      throw ParseError(term, "expected a parenthesized list of values");
    }
    for (auto& v : SplitTerms(std::string_view(l).substr(1, l.size() - 2))) {
      std::string value = Trim(v);
      CheckValue(term, value);
      r.values.push_back(value);
    }
  };
  if (rest.rfind("!=", 0) == 0) {
    r.op = LabelRequirement::Op::kNotEquals;
    r.values = {Trim(std::string_view(rest).substr(2))};
  } else if (rest.rfind("==", 0) == 0) {
    r.op = LabelRequirement::Op::kEquals;
    r.values = {Trim(std::string_view(rest).substr(2))};
  } else if (rest[0] == '=') {
    r.op = LabelRequirement::Op::kEquals;
    r.values = {Trim(std::string_view(rest).substr(1))};
  } else if (rest[0] == '>' || rest[0] == '<') {
    r.op = rest[0] == '>' ? LabelRequirement::Op::kGt : LabelRequirement::Op::kLt;
    std::string v = Trim(std::string_view(rest).substr(1));
    char* end = nullptr;
    std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0')
      throw ParseError(term, "for 'gt', 'lt' operators, the value must be an integer");
    r.values = {v};
    return r;
  } else if (rest.rfind("notin", 0) == 0 && rest.size() > 5 && (rest[5] == ' ' || rest[5] == '(')) {
    r.op = LabelRequirement::Op::kNotIn;
    set_values(std::string_view(rest).substr(5));
    return r;
  } else if (rest.rfind("in", 0) == 0 && rest.size() > 2 && (rest[2] == ' ' || rest[2] == '(')) {
    r.op = LabelRequirement::Op::kIn;
    set_values(std::string_view(rest).substr(2));
    return r;
  } else {
    throw ParseError(term,
                     "found '" + rest.substr(0, 1) + "', expected: '=', '!=', '==', 'in', notin'");
  }
  CheckValue(term, r.values[0]);
  return r;
}

const char* OpString(LabelRequirement::Op op) {
  switch (op) {
    case LabelRequirement::Op::kEquals:
      return "=";
    case LabelRequirement::Op::kNotEquals:
      return "!=";
    case LabelRequirement::Op::kIn:
      return " in ";
    case LabelRequirement::Op::kNotIn:
      return " notin ";
    case LabelRequirement::Op::kGt:
      return ">";
    case LabelRequirement::Op::kLt:
      return "<";
    default:
      return "";
  }
}

}  // namespace

std::string LabelKeyError(std::string_view key) {
  static const std::regex kName("([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]");
  static const std::regex kDns1123Sub(
      "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*");
  std::string_view name = key;
  size_t slash = key.find('/');
  if (slash != std::string_view::npos) {
    std::string prefix(key.substr(0, slash));
    name = key.substr(slash + 1);
    if (prefix.empty() || prefix.size() > 253 || !std::regex_match(prefix, kDns1123Sub)) {
      return "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
             "characters, '-' or '.', and must start and end with an alphanumeric character";
    }
  }
  if (name.empty()) return "name part must be non-empty";
  if (name.size() > 63) return "name part must be no more than 63 characters";
  if (!std::regex_match(std::string(name), kName)) {
    return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
           "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
           "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
  }
  return "";
}

std::string LabelValueError(std::string_view value) {
  static const std::regex kValue("(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?");
  if (value.size() > 63) return "must be no more than 63 characters";
  if (!std::regex_match(std::string(value), kValue)) {
    return "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
           "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
           "'my_value',  or '12345', regex used for validation is "
           "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
  }
  return "";
}

LabelSelector LabelSelector::Parse(std::string_view text) {
  LabelSelector s;
  if (Trim(text).empty()) return s;
  for (const auto& term : SplitTerms(text)) s.reqs_.push_back(ParseTerm(term));
  return s;
}

LabelSelector LabelSelector::FromJson(const Json& sel, const std::string& field) {
  LabelSelector s;
  if (sel.is_null()) return s;
  if (!sel.is_object()) throw Error::BadRequest(field + ": must be an object");
  if (auto it = sel.find("matchLabels"); it != sel.end() && it->is_object()) {
    for (auto& [k, v] : it->items()) {
      if (!v.is_string())
        throw Error::BadRequest(field + ".matchLabels." + k + ": must be a string");
      s.reqs_.push_back({k, LabelRequirement::Op::kEquals, {v.get<std::string>()}});
    }
  }
  if (auto it = sel.find("matchExpressions"); it != sel.end() && it->is_array()) {
    int i = 0;
    for (const auto& e : *it) {
      std::string where = field + ".matchExpressions[" + std::to_string(i++) + "]";
      LabelRequirement r;
      r.key = e.value("key", "");
      std::string op = e.value("operator", "");
      if (op == "In")
        r.op = LabelRequirement::Op::kIn;
      else if (op == "NotIn")
        r.op = LabelRequirement::Op::kNotIn;
      else if (op == "Exists")
        r.op = LabelRequirement::Op::kExists;
      else if (op == "DoesNotExist")
        r.op = LabelRequirement::Op::kDoesNotExist;
      else
        throw Error::BadRequest(where + ".operator: Unsupported value: \"" + op + "\"");
      if (e.contains("values") && e["values"].is_array()) {
        for (const auto& v : e["values"])
          r.values.push_back(v.is_string() ? v.get<std::string>() : v.dump());
      }
      s.reqs_.push_back(std::move(r));
    }
  }
  return s;
}

bool LabelSelector::Matches(const Json& labels) const {
  for (const auto& r : reqs_) {
    const Json* v = nullptr;
    if (labels.is_object()) {
      auto it = labels.find(r.key);
      if (it != labels.end()) v = &*it;
    }
    std::string value = (v != nullptr && v->is_string()) ? v->get<std::string>() : "";
    bool has = v != nullptr;
    auto in = [&] {
      for (const auto& x : r.values) {
        if (x == value) return true;
      }
      return false;
    };
    switch (r.op) {
      case LabelRequirement::Op::kEquals:
        if (!has || value != r.values[0]) return false;
        break;
      case LabelRequirement::Op::kNotEquals:
        if (has && value == r.values[0]) return false;
        break;
      case LabelRequirement::Op::kIn:
        if (!has || !in()) return false;
        break;
      case LabelRequirement::Op::kNotIn:
        if (has && in()) return false;
        break;
      case LabelRequirement::Op::kExists:
        if (!has) return false;
        break;
      case LabelRequirement::Op::kDoesNotExist:
        if (has) return false;
        break;
      case LabelRequirement::Op::kGt:
      case LabelRequirement::Op::kLt: {
        if (!has) return false;
        char* end = nullptr;
        long long lv = std::strtoll(value.c_str(), &end, 10);
        if (value.empty() || *end != '\0') return false;
        long long rv = std::strtoll(r.values[0].c_str(), nullptr, 10);
        if (r.op == LabelRequirement::Op::kGt ? !(lv > rv) : !(lv < rv)) return false;
        break;
      }
    }
  }
  return true;
}

std::string LabelSelector::ToString() const {
  std::string out;
  for (const auto& r : reqs_) {
    if (!out.empty()) out += ",";
    if (r.op == LabelRequirement::Op::kDoesNotExist) {
      out += "!" + r.key;
    } else if (r.op == LabelRequirement::Op::kExists) {
      out += r.key;
    } else if (r.op == LabelRequirement::Op::kIn || r.op == LabelRequirement::Op::kNotIn) {
      out += r.key + OpString(r.op) + "(";
      for (size_t i = 0; i < r.values.size(); ++i) out += (i ? "," : "") + r.values[i];
      out += ")";
    } else {
      out += r.key + OpString(r.op) + r.values[0];
    }
  }
  return out;
}

FieldSelector FieldSelector::Parse(std::string_view text) {
  FieldSelector s;
  if (Trim(text).empty()) return s;
  for (const auto& raw : SplitTerms(text)) {
    std::string term = Trim(raw);
    FieldRequirement r;
    size_t pos;
    if ((pos = term.find("!=")) != std::string::npos) {
      r.negate = true;
      r.field = Trim(std::string_view(term).substr(0, pos));
      r.value = Trim(std::string_view(term).substr(pos + 2));
    } else if ((pos = term.find("==")) != std::string::npos) {
      r.field = Trim(std::string_view(term).substr(0, pos));
      r.value = Trim(std::string_view(term).substr(pos + 2));
    } else if ((pos = term.find('=')) != std::string::npos) {
      r.field = Trim(std::string_view(term).substr(0, pos));
      r.value = Trim(std::string_view(term).substr(pos + 1));
    } else {
      throw Error::BadRequest("invalid field selector: \"" + term +
                              "\": expected field=value, field==value or field!=value");
    }
    if (r.field.empty())
      throw Error::BadRequest("invalid field selector: \"" + term + "\": empty field");
    s.reqs_.push_back(std::move(r));
  }
  return s;
}

std::string FieldValue(const Json& obj, std::string_view path) {
  const Json* cur = &obj;
  while (!path.empty()) {
    size_t dot = path.find('.');
    std::string part(path.substr(0, dot));
    if (!cur->is_object()) return "";
    auto it = cur->find(part);
    if (it == cur->end()) return "";
    cur = &*it;
    if (dot == std::string_view::npos) break;
    path.remove_prefix(dot + 1);
  }
  if (cur->is_string()) return cur->get<std::string>();
  if (cur->is_boolean()) return cur->get<bool>() ? "true" : "false";
  if (cur->is_number()) return cur->dump();
  return "";
}

bool FieldSelector::Matches(const Json& obj) const {
  for (const auto& r : reqs_) {
    bool eq = FieldValue(obj, r.field) == r.value;
    if (eq == r.negate) return false;
  }
  return true;
}

std::string FieldSelector::PinnedName() const {
  for (const auto& r : reqs_) {
    if (r.field == "metadata.name" && !r.negate) return r.value;
  }
  return "";
}

}  // namespace kin
