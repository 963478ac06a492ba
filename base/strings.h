// Small text helpers shared across modules.
//
// GoQuote renders a string as Go's strconv.Quote (%q) does, so messages read
// as Kubernetes' own. Base64 is the standard alphabet with padding, as JSON
// carries []byte fields (Secret data, kubeconfig certificates).
// Thread-safety: stateless, thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kin {

std::string GoQuote(std::string_view s);
// The parts with `sep` between them ("a, b, c"), as Go's strings.Join.
std::string Join(const std::vector<std::string>& parts, std::string_view sep);
// The segments of a URL path, empty ones dropped: "/api//v1/" -> {api, v1}.
std::vector<std::string> SplitPath(std::string_view path);
// The same segments as views into `path` (no copies, for hot paths such as
// the Ingress proxy's path matching); they live as long as `path`'s text.
std::vector<std::string_view> SplitPathViews(std::string_view path);
std::string Base64Encode(std::string_view data);
// nullopt when `text` is not valid padded standard base64 (as Go's
// base64.StdEncoding reads it: \r and \n ignored); `bad_at` then gets the
// offset of the first bad byte.
std::optional<std::string> Base64Decode(std::string_view text, size_t* bad_at = nullptr);

}  // namespace kin
