#include "base/yaml.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdlib>
#include <optional>
#include <regex>
#include <sstream>

#include "base/error.h"

namespace kin {

namespace {

Error YamlError(const YAML::Mark& mark, const std::string& what) {
  if (mark.is_null()) return Error::BadRequest("yaml: " + what);
  return Error::BadRequest("yaml: line " + std::to_string(mark.line + 1) + ", column " +
                           std::to_string(mark.column + 1) + ": " + what);
}

// Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF),
// what nlohmann::json requires of strings it dumps.
bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    unsigned c = static_cast<unsigned char>(s[i]);
    size_t n;
    unsigned lo = 0x80, hi = 0xbf;  // the allowed range of the second byte
    if (c < 0x80) {
      n = 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
      n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 3;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 4;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    } else {
      return false;
    }
    if (i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      unsigned b = static_cast<unsigned char>(s[i + k]);
      if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xbf)) return false;
    }
    i += n;
  }
  return true;
}

// The text of a scalar node. Like Kubernetes' YAML reader (go-yaml), refuse
// invalid UTF-8 rather than let it reach JSON, which cannot encode it (dumping
// the object later would throw).
const std::string& ScalarText(const YAML::Node& node) {
  const std::string& s = node.Scalar();
  if (!IsValidUtf8(s)) throw YamlError(node.Mark(), "invalid UTF-8 in a string");
  return s;
}

bool IsNullScalar(const std::string& s) {
  return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL";
}

// The core schema's number forms, matched by hand: std::regex recurses once
// per character, so a long plain scalar (a 100 kB run of digits in a
// manifest) overflowed the stack (found by fuzz/yaml_fuzzer).
size_t SkipDigits(std::string_view s, size_t i, int base = 10) {
  auto is_digit = [base](char c) {
    if (base == 8) return c >= '0' && c <= '7';
    if (base == 16) return isxdigit(static_cast<unsigned char>(c)) != 0;
    return c >= '0' && c <= '9';
  };
  while (i < s.size() && is_digit(s[i])) ++i;
  return i;
}

size_t SkipSign(std::string_view s) { return !s.empty() && (s[0] == '-' || s[0] == '+') ? 1 : 0; }

// [-+]?[0-9]+
bool IsInt(std::string_view s) {
  size_t i = SkipSign(s);
  return i < s.size() && SkipDigits(s, i) == s.size();
}

// 0o[0-7]+ and 0x[0-9a-fA-F]+
bool IsOct(std::string_view s) {
  return s.size() > 2 && s.starts_with("0o") && SkipDigits(s, 2, 8) == s.size();
}
bool IsHex(std::string_view s) {
  return s.size() > 2 && s.starts_with("0x") && SkipDigits(s, 2, 16) == s.size();
}

// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
bool IsFloat(std::string_view s) {
  size_t i = SkipSign(s);
  size_t int_end = SkipDigits(s, i);
  if (int_end > i) {
    i = int_end;
    if (i < s.size() && s[i] == '.') i = SkipDigits(s, i + 1);
  } else {
    if (i >= s.size() || s[i] != '.') return false;
    size_t frac_end = SkipDigits(s, i + 1);
    if (frac_end == i + 1) return false;
    i = frac_end;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    size_t exp = i + 1;
    if (exp < s.size() && (s[exp] == '-' || s[exp] == '+')) ++exp;
    size_t exp_end = SkipDigits(s, exp);
    if (exp_end == exp) return false;
    i = exp_end;
  }
  return i == s.size();
}

// Resolves a plain (unquoted) scalar per the YAML 1.2 core schema.
Json ResolvePlain(const std::string& s) {
  if (IsNullScalar(s)) return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  // Numbers start with a digit, a sign or a dot: skip the number checks otherwise.
  char c = s[0];
  if (!(isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '+' || c == '.')) return s;
  if (IsInt(s)) {
    errno = 0;
    char* end = nullptr;
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (errno == 0) return v;
    return std::strtod(s.c_str(), nullptr);
  }
  if (IsOct(s)) return std::strtoll(s.c_str() + 2, nullptr, 8);
  if (IsHex(s)) return std::strtoll(s.c_str() + 2, nullptr, 16);
  if (IsFloat(s)) return std::strtod(s.c_str(), nullptr);
  if (s == ".inf" || s == ".Inf" || s == ".INF" || s == "+.inf") return HUGE_VAL;
  if (s == "-.inf" || s == "-.Inf" || s == "-.INF") return -HUGE_VAL;
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return NAN;
  return s;
}

Json ToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return nullptr;
    case YAML::NodeType::Scalar: {
      // yaml-cpp tags plain scalars "?" and quoted or block scalars "!".
      const std::string& text = ScalarText(node);
      if (node.Tag() == "?") return ResolvePlain(text);
      if (node.Tag() == "!" || node.Tag() == "tag:yaml.org,2002:str" || node.Tag() == "!!str") {
        return text;
      }
      if (node.Tag() == "tag:yaml.org,2002:int" || node.Tag() == "tag:yaml.org,2002:float" ||
          node.Tag() == "tag:yaml.org,2002:bool" || node.Tag() == "tag:yaml.org,2002:null") {
        return ResolvePlain(text);
      }
      return text;
    }
    case YAML::NodeType::Sequence: {
      Json arr = Json::array();
      for (const auto& item : node) arr.push_back(ToJson(item));
      return arr;
    }
    case YAML::NodeType::Map: {
      Json obj = Json::object();
      for (const auto& kv : node) {
        if (!kv.first.IsScalar()) throw YamlError(kv.first.Mark(), "map keys must be scalars");
        const std::string& key = ScalarText(kv.first);
        if (obj.contains(key)) {
          throw YamlError(kv.first.Mark(), "mapping key \"" + key + "\" already defined");
        }
        obj[key] = ToJson(kv.second);
      }
      return obj;
    }
  }
  return nullptr;
}

// yaml-cpp 0.7 (Debian 12's) loops forever in LoadAll, allocating a null
// document per turn, when a document starts with a token its parser never
// consumes: a stream of just "," (jbeder/yaml-cpp#1040, fixed upstream by
// #1319). One request body could take all memory (found by
// fuzz/cluster_config_fuzzer). A first pass over the parser's events finds
// it: a document that starts where the previous one started made no progress.
class DocumentStarts : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { start = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

  YAML::Mark start;
};

void CheckParserProgress(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentStarts events;
  std::optional<int> last_start;
  while (parser.HandleNextDocument(events)) {
    if (last_start == events.start.pos) {
      throw YamlError(events.start, "did not find expected node content");
    }
    last_start = events.start.pos;
  }
}

// --- emitter -------------------------------------------------------------

bool NeedsQuotes(const std::string& s) {
  if (s.empty()) return true;
  if (!ResolvePlain(s).is_string()) return true;  // would read back as a number, bool or null
  static const std::string kIndicators = "-?:,[]{}#&*!|>'\"%@`";
  if (kIndicators.find(s[0]) != std::string::npos) {
    // "-foo" and ":foo" are fine plain only when not followed by a space; keep it simple.
    return true;
  }
  if (s.front() == ' ' || s.back() == ' ') return true;
  if (s.find(": ") != std::string::npos || s.find(" #") != std::string::npos) return true;
  if (s.back() == ':') return true;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  // YAML 1.1 booleans: older readers (and kubectl's Go YAML) take these as bools.
  static const std::regex kYaml11Bool("y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF");
  return s.size() <= 3 && std::regex_match(s, kYaml11Bool);
}

std::string Quote(const std::string& s) { return Json(s).dump(); }

bool CanBeLiteralBlock(const std::string& s) {
  if (s.find('\n') == std::string::npos) return false;
  if (s.front() == ' ' || s.front() == '\n') return false;
  for (unsigned char c : s) {
    if ((c < 0x20 && c != '\n') || c == 0x7f) return false;
  }
  // Trailing spaces on a line do not survive a literal block reliably.
  return s.find(" \n") == std::string::npos && s.back() != ' ';
}

void EmitScalar(const Json& v, std::string& out) {
  switch (v.type()) {
    case Json::value_t::null:
      out += "null";
      break;
    case Json::value_t::boolean:
      out += v.get<bool>() ? "true" : "false";
      break;
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float:
      out += v.dump();
      break;
    case Json::value_t::string: {
      const auto& s = v.get_ref<const std::string&>();
      out += NeedsQuotes(s) ? Quote(s) : s;
      break;
    }
    default:
      out += v.dump();
      break;
  }
}

void EmitLiteral(const std::string& s, int indent, std::string& out) {
  bool trailing_newline = s.back() == '\n';
  out += trailing_newline ? "|\n" : "|-\n";
  std::string body = trailing_newline ? s.substr(0, s.size() - 1) : s;
  size_t start = 0;
  while (true) {
    size_t nl = body.find('\n', start);
    std::string line = body.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    if (!line.empty()) out.append(indent, ' ') += line;
    out += '\n';
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
}

void Emit(const Json& v, int indent, std::string& out);

// Emits the value that follows "key:" or "- " on the same line.
void EmitAfterKey(const Json& v, int indent, std::string& out, bool in_sequence_item) {
  if (v.is_object() && !v.empty()) {
    out += '\n';
    Emit(v, indent + 2, out);
  } else if (v.is_array() && !v.empty()) {
    out += '\n';
    // kubectl style: a sequence under a mapping key sits at the key's indent.
    Emit(v, in_sequence_item ? indent + 2 : indent, out);
  } else if (v.is_object()) {
    out += " {}\n";
  } else if (v.is_array()) {
    out += " []\n";
  } else if (v.is_string() && CanBeLiteralBlock(v.get_ref<const std::string&>())) {
    out += ' ';
    EmitLiteral(v.get_ref<const std::string&>(), indent + 2, out);
  } else {
    out += ' ';
    EmitScalar(v, out);
    out += '\n';
  }
}

void Emit(const Json& v, int indent, std::string& out) {
  if (v.is_object()) {
    if (v.empty()) {
      out.append(indent, ' ') += "{}\n";
      return;
    }
    for (auto it = v.begin(); it != v.end(); ++it) {
      out.append(indent, ' ');
      out += NeedsQuotes(it.key()) ? Quote(it.key()) : it.key();
      out += ':';
      EmitAfterKey(it.value(), indent, out, false);
    }
  } else if (v.is_array()) {
    if (v.empty()) {
      out.append(indent, ' ') += "[]\n";
      return;
    }
    for (const auto& item : v) {
      out.append(indent, ' ') += "-";
      if (item.is_object() && !item.empty()) {
        // First key on the dash's line, the rest aligned under it.
        std::string nested;
        Emit(item, indent + 2, nested);
        out += ' ';
        out += nested.substr(indent + 2);
      } else if (item.is_array() && !item.empty()) {
        out += '\n';
        Emit(item, indent + 2, out);
      } else {
        EmitAfterKey(item, indent, out, true);
      }
    }
  } else if (v.is_string() && CanBeLiteralBlock(v.get_ref<const std::string&>())) {
    out.append(indent, ' ');
    EmitLiteral(v.get_ref<const std::string&>(), indent + 2, out);
  } else {
    out.append(indent, ' ');
    EmitScalar(v, out);
    out += '\n';
  }
}

}  // namespace

std::vector<Json> ParseYamlDocuments(std::string_view text) {
  std::vector<Json> docs;
  try {
    std::string input(text);
    CheckParserProgress(input);
    for (const YAML::Node& node : YAML::LoadAll(input)) {
      Json j = ToJson(node);
      if (!j.is_null()) docs.push_back(std::move(j));
    }
  } catch (const YAML::Exception& e) {
    throw YamlError(e.mark, e.msg);
  }
  return docs;
}

Json ParseYaml(std::string_view text) {
  auto docs = ParseYamlDocuments(text);
  if (docs.empty()) return nullptr;
  if (docs.size() > 1)
    throw Error::BadRequest("yaml: expected one document, found " + std::to_string(docs.size()));
  return docs[0];
}

Json ParseJsonOrYaml(std::string_view text) {
  size_t i = text.find_first_not_of(" \t\r\n");
  if (i != std::string_view::npos && (text[i] == '{' || text[i] == '[')) {
    try {
      return Json::parse(text);
    } catch (const Json::parse_error& e) {
      // Flow-style YAML also starts with '{'; fall back before giving up.
      try {
        return ParseYaml(text);
      } catch (const Error&) {
        throw Error::BadRequest(std::string("json: ") + e.what());
      }
    } catch (const Json::exception& e) {
      // Well-formed JSON that nlohmann cannot hold (a number past double's
      // range: out_of_range 406) was an uncaught non-kin::Error (found by
      // fuzz/yaml_fuzzer). Go's decoder refuses such numbers too.
      throw Error::BadRequest(std::string("json: ") + e.what());
    }
  }
  return ParseYaml(text);
}

std::string ToYaml(const Json& value) {
  std::string out;
  Emit(value, 0, out);
  return out;
}

std::string ToYamlDocuments(const std::vector<Json>& docs) {
  std::string out;
  for (size_t i = 0; i < docs.size(); ++i) {
    if (i > 0) out += "---\n";
    out += ToYaml(docs[i]);
  }
  return out;
}

}  // namespace kin
