// Fuzzes label and field selector parsing (client/selector.h) as
// ?labelSelector= and ?fieldSelector= reach the API server: any string, then
// matching against a fixed object, and the label selector's printed form
// must parse again.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/error.h"
#include "client/selector.h"

namespace {

const kin::Json& Labels() {
  static const kin::Json labels = {{"app", "web"}, {"tier", "a"}, {"env", "prod"}, {"n", "5"}};
  return labels;
}

const kin::Json& Object() {
  static const kin::Json obj = {
      {"metadata", {{"name", "web-1"}, {"namespace", "default"}, {"labels", Labels()}}},
      {"spec", {{"nodeName", "kin-worker"}, {"replicas", 3}}},
      {"status", {{"phase", "Running"}}}};
  return obj;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    kin::LabelSelector sel = kin::LabelSelector::Parse(text);
    (void)sel.Matches(Labels());
    (void)sel.Matches(kin::Json());
    (void)kin::LabelSelector::Parse(sel.ToString());
  } catch (const kin::Error&) {
    // Parse's documented refusal (BadRequest).
  }
  try {
    kin::FieldSelector sel = kin::FieldSelector::Parse(text);
    (void)sel.Matches(Object());
    (void)sel.PinnedName();
  } catch (const kin::Error&) {
  }
  (void)kin::LabelKeyError(text);
  (void)kin::LabelValueError(text);
  (void)kin::FieldValue(Object(), text);
  return 0;
}
