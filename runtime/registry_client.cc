#include "runtime/registry_client.h"

#include <openssl/evp.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <filesystem>

#include "base/error.h"
#include "base/file.h"
#include "base/log.h"
#include "base/strings.h"
#include "runtime/image_store.h"

namespace kin {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kOciIndex = "application/vnd.oci.image.index.v1+json";
constexpr const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";
constexpr const char* kDockerList = "application/vnd.docker.distribution.manifest.list.v2+json";
constexpr const char* kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
constexpr size_t kMaxManifestBytes = 4 << 20;  // as containerd's limit
constexpr size_t kMaxErrorBody = 64 << 10;
constexpr auto kStallTimeout = std::chrono::seconds(60);

bool IsHex(std::string_view s) {
  for (char ch : s) {
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) return false;
  }
  return true;
}

bool IsLowerAlnum(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9'); }

// One path component of a repository, as the reference grammar allows:
// lower-case alphanumerics separated by ".", "_", "__" or runs of "-".
bool ValidComponent(std::string_view c) {
  if (c.empty() || !IsLowerAlnum(c.front()) || !IsLowerAlnum(c.back())) return false;
  for (size_t i = 0; i < c.size(); ++i) {
    char ch = c[i];
    if (IsLowerAlnum(ch) || ch == '-') continue;
    if (ch == '.' || ch == '_') {
      if (ch == '_' && i + 1 < c.size() && c[i + 1] == '_') ++i;  // "__"
      if (i + 1 < c.size() && !IsLowerAlnum(c[i + 1])) return false;
      continue;
    }
    return false;
  }
  return true;
}

bool ValidTag(std::string_view t) {
  if (t.empty() || t.size() > 128) return false;
  for (size_t i = 0; i < t.size(); ++i) {
    char ch = t[i];
    bool word = std::isalnum(static_cast<unsigned char>(ch)) || ch == '_';
    if (!word && (i == 0 || (ch != '.' && ch != '-'))) return false;
  }
  return true;
}

std::string Lower(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

// Incremental sha256.
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) {
    if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) != 1) {
      throw Error::Internal("sha256: init failed");
    }
  }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(std::string_view data) { EVP_DigestUpdate(ctx_, data.data(), data.size()); }
  std::string Digest() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, md, &len);
    static const char* hex = "0123456789abcdef";
    std::string out = "sha256:";
    for (unsigned int i = 0; i < len; ++i) {
      out += hex[md[i] >> 4];
      out += hex[md[i] & 15];
    }
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
};

// "sha256:<64 hex>", else Invalid naming `what`.
void CheckDigest(const std::string& digest, const std::string& what) {
  if (digest.rfind("sha256:", 0) != 0 || digest.size() != 7 + 64 || !IsHex(digest.substr(7))) {
    throw Error::Invalid(what + ": unsupported or malformed digest " + GoQuote(digest));
  }
}

// The registry's error body ({"errors": [{"code", "message"}]}) as text.
std::string RegistryErrorText(const http::ClientResponse& r) {
  Json j = Json::parse(r.body, nullptr, false);
  std::string out;
  if (j.is_object() && j.contains("errors") && j["errors"].is_array()) {
    for (const auto& e : j["errors"]) {
      if (!e.is_object()) continue;
      if (!out.empty()) out += "; ";
      out += e.value("code", std::string("UNKNOWN")) + ": " + e.value("message", std::string());
    }
  }
  if (out.empty()) out = "HTTP status " + std::to_string(r.status);
  return out;
}

Error StatusError(int status, const std::string& msg) {
  switch (status) {
    case 401:
      return Error::Unauthorized(msg);
    case 403:
      return Error::Forbidden(msg);
    case 404:
      return Error::NotFound(msg);
    default:
      return Error::Unavailable(msg);
  }
}

// The origin ("https://host:port") of an absolute URL, "" when it is not one.
std::string Origin(const std::string& url) {
  size_t scheme = url.find("://");
  if (scheme == std::string::npos) return "";
  size_t path = url.find('/', scheme + 3);
  return path == std::string::npos ? url : url.substr(0, path);
}

class CurlTransport : public RegistryTransport {
 public:
  explicit CurlTransport(std::string ca_file) : ca_file_(std::move(ca_file)) {}
  http::ClientResponse Get(const std::string& url, const http::Headers& headers,
                           const std::function<bool(std::string_view)>& on_body) override {
    http::ClientOptions o;
    o.ca_file = ca_file_;
    http::HttpClient client(o);  // base_url "": `url` is absolute
    if (!on_body) return client.Get(url, headers);
    http::ClientResponse head;
    // A stream has no overall timeout (a layer may be large), but one on
    // which nothing arrives for a minute is given up.
    auto last_data = Clock::now();
    bool stalled = false;
    client.Stream(
        "GET", url,
        [&](std::string_view data) {
          last_data = Clock::now();
          if (head.status >= 200 && head.status < 300) return on_body(data);
          if (head.body.size() < kMaxErrorBody) head.body.append(data);
          return true;
        },
        headers, &head, [&] { return stalled = Clock::now() - last_data > kStallTimeout; });
    if (stalled) throw Error::Timeout("GET " + url + ": no data for a minute");
    return head;
  }

 private:
  std::string ca_file_;
};

}  // namespace

std::shared_ptr<RegistryTransport> CurlRegistryTransport(std::string ca_file) {
  return std::make_shared<CurlTransport>(std::move(ca_file));
}

std::string Sha256Digest(std::string_view data) {
  Sha256 h;
  h.Update(data);
  return h.Digest();
}

// ---- references ----

std::string ImageReference::String() const {
  std::string s = Name();
  if (!tag.empty()) s += ":" + tag;
  if (!digest.empty()) s += "@" + digest;
  return s;
}

ImageReference ParseImageReference(std::string_view image) {
  const std::string what = "invalid image reference " + GoQuote(image);
  if (image.empty()) throw Error::Invalid("image reference must not be empty");
  std::string normalized = NormalizeImageName(image);
  ImageReference ref;
  size_t at = normalized.find('@');
  if (at != std::string::npos) {
    ref.digest = normalized.substr(at + 1);
    normalized.resize(at);
    CheckDigest(ref.digest, what);
  }
  size_t slash = normalized.find('/');  // normalized names always have a domain
  ref.domain = normalized.substr(0, slash);
  std::string rest = normalized.substr(slash + 1);
  size_t colon = rest.rfind(':');
  if (colon != std::string::npos && rest.find('/', colon) == std::string::npos) {
    ref.tag = rest.substr(colon + 1);
    rest.resize(colon);
    if (!ValidTag(ref.tag)) throw Error::Invalid(what + ": bad tag " + GoQuote(ref.tag));
  }
  ref.repository = rest;
  if (ref.domain.empty()) throw Error::Invalid(what + ": no registry");
  size_t pos = 0;
  while (true) {
    size_t next = rest.find('/', pos);
    std::string_view comp = std::string_view(rest).substr(
        pos, next == std::string::npos ? std::string::npos : next - pos);
    if (!ValidComponent(comp)) {
      throw Error::Invalid(what + ": repository name must be lowercase alphanumerics separated " +
                           "by '.', '_', '__' or '-' (" + GoQuote(comp) + ")");
    }
    if (next == std::string::npos) break;
    pos = next + 1;
  }
  return ref;
}

// ---- auth ----

std::vector<AuthChallenge> ParseWwwAuthenticate(std::string_view h) {
  std::vector<AuthChallenge> out;
  size_t i = 0;
  auto skip_ws = [&] {
    while (i < h.size() && (h[i] == ' ' || h[i] == '\t' || h[i] == ',')) ++i;
  };
  auto token = [&] {
    size_t start = i;
    while (i < h.size() && h[i] != ' ' && h[i] != '\t' && h[i] != ',' && h[i] != '=') ++i;
    return std::string(h.substr(start, i - start));
  };
  while (true) {
    skip_ws();
    if (i >= h.size()) break;
    std::string word = token();
    if (i < h.size() && h[i] == '=' && !out.empty()) {
      // A parameter of the current challenge.
      ++i;
      std::string value;
      if (i < h.size() && h[i] == '"') {
        ++i;
        while (i < h.size() && h[i] != '"') {
          if (h[i] == '\\' && i + 1 < h.size()) ++i;
          value += h[i++];
        }
        if (i < h.size()) ++i;  // closing quote
      } else {
        value = token();
      }
      out.back().params[Lower(word)] = value;
      continue;
    }
    if (word.empty()) {
      ++i;  // a stray '='
      continue;
    }
    out.push_back(AuthChallenge{word, {}});
  }
  return out;
}

std::string RegistryHostOfKey(std::string_view key) {
  std::string k(key);
  size_t scheme = k.find("://");
  if (scheme != std::string::npos) k = k.substr(scheme + 3);
  size_t slash = k.find('/');
  if (slash != std::string::npos) k.resize(slash);
  k = Lower(k);
  if (k == "index.docker.io" || k == "registry-1.docker.io" || k == "registry.hub.docker.com") {
    return "docker.io";
  }
  return k;
}

void ParseDockerConfig(const std::string& json, const std::string& what, Keyring& keyring) {
  Json j = Json::parse(json, nullptr, false);
  if (!j.is_object()) throw Error::Invalid(what + ": not a JSON object");
  const Json& auths = j.contains("auths") ? j["auths"] : j;
  if (!auths.is_object()) throw Error::Invalid(what + ": auths is not an object");
  for (auto it = auths.begin(); it != auths.end(); ++it) {
    if (!it.value().is_object())
      throw Error::Invalid(what + ": auths." + it.key() + " is not an object");
    RegistryCredential cred;
    cred.username = it.value().value("username", std::string());
    cred.password = it.value().value("password", std::string());
    std::string auth = it.value().value("auth", std::string());
    if (!auth.empty()) {
      auto decoded = Base64Decode(auth);
      size_t colon = decoded ? decoded->find(':') : std::string::npos;
      if (colon == std::string::npos) {
        throw Error::Invalid(what + ": auths." + it.key() +
                             ".auth is not base64 of \"username:password\"");
      }
      cred.username = decoded->substr(0, colon);
      cred.password = decoded->substr(colon + 1);
    }
    if (cred.username.empty() && cred.password.empty()) continue;
    keyring.emplace(RegistryHostOfKey(it.key()), cred);  // the first secret wins, as the kubelet
  }
}

Json SelectPlatformManifest(const Json& index, const std::string& what) {
  const Json& manifests = index.contains("manifests") ? index["manifests"] : Json();
  if (!manifests.is_array()) throw Error::Invalid(what + ": the index lists no manifests");
  for (const auto& d : manifests) {
    if (!d.is_object()) continue;
    const Json platform = d.value("platform", Json::object());
    if (!platform.is_object()) continue;
    if (platform.value("os", std::string()) == "linux" &&
        platform.value("architecture", std::string()) == "amd64") {
      return d;
    }
  }
  throw Error::Invalid(what + ": no manifest for linux/amd64 in the index");
}

// ---- pulling ----

// One endpoint's conversation: its URL, the repository and the credentials
// it has earned (a bearer token, or Basic).
class RegistryClient::Session {
 public:
  Session(const RegistryClient& client, std::string endpoint, const ImageReference& ref,
          std::optional<RegistryCredential> cred)
      : client_(client), endpoint_(std::move(endpoint)), ref_(ref), cred_(std::move(cred)) {}

  // GET <endpoint>/v2/<repo>/<path>, authenticating on a 401 (once) and
  // following redirects without credentials.
  http::ClientResponse Get(const std::string& path, const http::Headers& extra,
                           const std::function<bool(std::string_view)>& on_body,
                           const std::function<void()>& restart = {}) {
    std::string url = endpoint_ + "/v2/" + ref_.repository + "/" + path;
    bool authenticated = false;
    for (int hop = 0; hop < 8; ++hop) {
      http::Headers headers = extra;
      bool same_origin = Origin(url) == endpoint_;
      if (same_origin && !authorization_.empty()) headers.emplace("Authorization", authorization_);
      if (restart) restart();
      http::ClientResponse r = client_.transport_->Get(url, headers, on_body);
      if (r.status == 401 && same_origin && !authenticated) {
        Authenticate(r.Header("WWW-Authenticate"));
        authenticated = true;
        continue;
      }
      if (r.status >= 300 && r.status < 400 && !r.Header("Location").empty()) {
        std::string loc = r.Header("Location");
        url = loc.find("://") != std::string::npos ? loc : Origin(url) + loc;
        continue;
      }
      return r;
    }
    throw Error::Unavailable("GET " + url + ": too many redirects");
  }

  const std::string& endpoint() const { return endpoint_; }

 private:
  void Authenticate(const std::string& header) {
    auto challenges = ParseWwwAuthenticate(header);
    for (const auto& c : challenges) {
      std::string scheme = Lower(c.scheme);
      if (scheme == "bearer") return BearerToken(c);
    }
    for (const auto& c : challenges) {
      if (Lower(c.scheme) == "basic") {
        if (!cred_) {
          throw Error::Unauthorized("the registry requires credentials (Basic auth) and no " +
                                    std::string("imagePullSecret has any for ") + ref_.domain);
        }
        authorization_ = "Basic " + Base64Encode(cred_->username + ":" + cred_->password);
        return;
      }
    }
    throw Error::Unauthorized(
        "401 without a challenge kin understands (WWW-Authenticate: " + GoQuote(header) + ")");
  }

  void BearerToken(const AuthChallenge& c) {
    auto param = [&](const char* k) {
      auto it = c.params.find(k);
      return it == c.params.end() ? std::string() : it->second;
    };
    std::string realm = param("realm");
    if (realm.rfind("https://", 0) != 0 && realm.rfind("http://", 0) != 0) {
      throw Error::Unauthorized("bearer challenge with a bad realm " + GoQuote(realm));
    }
    std::string scope = param("scope");
    if (scope.empty()) scope = "repository:" + ref_.repository + ":pull";
    std::string url = realm + (realm.find('?') == std::string::npos ? "?" : "&");
    std::string service = param("service");
    if (!service.empty()) url += "service=" + http::UrlEncode(service) + "&";
    url += "scope=" + http::UrlEncode(scope);
    http::Headers headers;
    if (cred_) {
      headers.emplace("Authorization",
                      "Basic " + Base64Encode(cred_->username + ":" + cred_->password));
    }
    http::ClientResponse r = client_.transport_->Get(url, headers, {});
    if (r.status != 200) {
      throw StatusError(r.status == 404 ? 401 : r.status,
                        "token from " + realm + " (scope " + scope + "): " + RegistryErrorText(r));
    }
    Json j = Json::parse(r.body, nullptr, false);
    std::string token = j.is_object() ? j.value("token", std::string()) : "";
    if (token.empty() && j.is_object()) token = j.value("access_token", std::string());
    if (token.empty())
      throw Error::Unauthorized("token from " + realm + ": no token in the answer");
    authorization_ = "Bearer " + token;
  }

  const RegistryClient& client_;
  std::string endpoint_;
  const ImageReference& ref_;
  std::optional<RegistryCredential> cred_;
  std::string authorization_;
};

RegistryClient::RegistryClient(RegistryOptions opts, std::string blob_dir,
                               std::shared_ptr<RegistryTransport> transport)
    : opts_(std::move(opts)),
      blob_dir_(std::move(blob_dir)),
      transport_(transport ? std::move(transport) : CurlRegistryTransport(opts_.ca_file)) {}

std::string RegistryClient::BlobPath(const std::string& digest) const {
  CheckDigest(digest, "blob");
  return blob_dir_ + "/sha256/" + digest.substr(7);
}

std::vector<std::string> RegistryClient::Endpoints(const std::string& domain) const {
  std::vector<std::string> out;
  auto endpoint = [&](std::string url) {
    while (!url.empty() && url.back() == '/') url.pop_back();
    if (url.size() >= 3 && url.compare(url.size() - 3, 3, "/v2") == 0) url.resize(url.size() - 3);
    if (url.find("://") == std::string::npos) {
      url = (opts_.insecure.count(url) ? "http://" : "https://") + url;
    }
    return url;
  };
  if (auto it = opts_.mirrors.find(domain); it != opts_.mirrors.end()) {
    for (const auto& m : it->second) out.push_back(endpoint(m));
  }
  if (domain == "docker.io") {
    out.push_back("https://registry-1.docker.io");
  } else {
    out.push_back(endpoint(domain));
  }
  return out;
}

PulledImage RegistryClient::Pull(const std::string& image, const Keyring& keyring) const {
  const ImageReference ref = ParseImageReference(image);
  std::string errors;
  const std::vector<std::string> endpoints = Endpoints(ref.domain);
  for (size_t e_i = 0; e_i < endpoints.size(); ++e_i) {
    const std::string& endpoint = endpoints[e_i];
    std::string host = RegistryHostOfKey(endpoint);
    std::optional<RegistryCredential> cred;
    // The endpoint's own credentials, else the image's registry's (a mirror
    // of docker.io is often given docker.io's).
    if (auto it = keyring.find(host); it != keyring.end()) {
      cred = it->second;
    } else if (auto it2 = keyring.find(ref.domain); it2 != keyring.end()) {
      cred = it2->second;
    }
    Session s(*this, endpoint, ref, cred);
    try {
      PulledImage out;
      out.reference = ref.String();
      out.endpoint = endpoint;
      // The manifest (through an index to linux/amd64).
      std::string want = ref.ManifestRef();
      std::string manifest_digest;
      Json manifest;
      for (int depth = 0;; ++depth) {
        if (depth > 2) throw Error::Invalid(ref.String() + ": indexes nest too deeply");
        http::Headers accept;
        accept.emplace("Accept", std::string(kOciIndex) + ", " + kDockerList + ", " + kOciManifest +
                                     ", " + kDockerManifest);
        http::ClientResponse r = s.Get("manifests/" + want, accept, {});
        if (r.status != 200) {
          throw StatusError(
              r.status, "manifest " + ref.repository + ":" + want + ": " + RegistryErrorText(r));
        }
        if (r.body.size() > kMaxManifestBytes) {
          throw Error::Invalid("manifest " + want + " is larger than 4 MiB");
        }
        std::string digest = Sha256Digest(r.body);
        if (want.rfind("sha256:", 0) == 0 && digest != want) {
          throw Error::Invalid("manifest digest mismatch: asked for " + want + ", got " + digest);
        }
        if (depth == 0) manifest_digest = digest;
        manifest = Json::parse(r.body, nullptr, false);
        if (!manifest.is_object()) throw Error::Invalid("manifest " + want + " is not JSON");
        std::string media = manifest.value("mediaType", r.Header("Content-Type"));
        if (manifest.contains("manifests") || media == kOciIndex || media == kDockerList) {
          Json d = SelectPlatformManifest(manifest, "image index " + ref.String());
          want = d.value("digest", std::string());
          CheckDigest(want, "image index " + ref.String());
          continue;
        }
        if (manifest.value("schemaVersion", 0) != 2 || !manifest.contains("config")) {
          throw Error::Invalid("manifest " + want + " of " + ref.String() +
                               ": not an OCI or Docker schema 2 image manifest (mediaType " +
                               GoQuote(media) + ")");
        }
        break;
      }
      out.repo_digest = ref.Name() + "@" + manifest_digest;
      // Blobs: config and layers.
      auto fetch = [&](const Json& desc) {
        std::string digest = desc.is_object() ? desc.value("digest", std::string()) : "";
        CheckDigest(digest, "manifest of " + ref.String());
        std::string path = BlobPath(digest);
        std::error_code ec;
        if (fs::exists(path, ec)) {
          out.size += static_cast<int64_t>(fs::file_size(path, ec));
          return path;
        }
        fs::create_directories(blob_dir_ + "/sha256");
        std::string tmp = blob_dir_ + "/sha256/.tmp-XXXXXX";
        int fd = ::mkstemp(tmp.data());
        if (fd < 0) throw ErrnoError(errno, "create " + tmp);
        FILE* f = ::fdopen(fd, "w");
        struct Cleanup {
          FILE*& f;
          std::string& tmp;
          bool keep = false;
          ~Cleanup() {
            if (f) std::fclose(f);
            if (!keep) ::unlink(tmp.c_str());
          }
        } cleanup{f, tmp};
        std::optional<Sha256> h;
        h.emplace();
        int64_t bytes = 0;
        bool write_failed = false;
        auto deadline = Clock::now() + opts_.blob_timeout;
        http::ClientResponse r = s.Get(
            "blobs/" + digest, {},
            [&](std::string_view data) {
              if (std::fwrite(data.data(), 1, data.size(), f) != data.size()) {
                write_failed = true;
                return false;
              }
              h->Update(data);
              bytes += static_cast<int64_t>(data.size());
              return Clock::now() < deadline;
            },
            [&] {  // a retry (after auth or a redirect) starts the file afresh
              std::rewind(f);
              if (::ftruncate(::fileno(f), 0) < 0) write_failed = true;
              h.emplace();
              bytes = 0;
            });
        if (write_failed) throw ErrnoError(errno, "write blob " + digest + " to " + tmp);
        if (r.status != 200) {
          throw StatusError(r.status, "blob " + digest + ": " + RegistryErrorText(r));
        }
        if (Clock::now() >= deadline)
          throw Error::Timeout("blob " + digest + ": download took too long");
        std::string got = h->Digest();
        if (got != digest) {
          throw Error::Invalid("blob " + digest + " of " + ref.String() +
                               ": digest mismatch (content hashes to " + got + ")");
        }
        if (std::fflush(f) != 0 || ::fsync(::fileno(f)) < 0) {
          throw ErrnoError(errno, "write blob " + digest);
        }
        std::fclose(f);
        f = nullptr;
        fs::rename(tmp, path);
        cleanup.keep = true;
        out.size += bytes;
        return path;
      };
      std::string config_path = fetch(manifest["config"]);
      out.config_digest = manifest["config"].value("digest", std::string());
      out.config = ReadFileIfExists(config_path).value_or("");
      for (const auto& layer : manifest.value("layers", Json::array())) {
        out.layers.push_back(fetch(layer));
      }
      return out;
    } catch (const Error& e) {
      if (!errors.empty()) errors += "; ";
      errors += endpoint + ": " + e.what();
      log::Info("pull {} from {}: {}", ref.String(), endpoint, e.what());
      // The last endpoint's error decides the code; earlier ones are named.
      if (e_i + 1 == endpoints.size()) throw Error(e.code(), errors);
    }
  }
  throw Error::Internal("pull " + ref.String() + ": no endpoint");
}

// ---- ImagePuller ----

ImagePuller::ImagePuller(ImageStore& store, RegistryOptions opts, std::string blob_dir,
                         std::shared_ptr<RegistryTransport> transport)
    : store_(store), client_(std::move(opts), std::move(blob_dir), std::move(transport)) {}

ImagePuller::~ImagePuller() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    for (auto& [k, in] : inflight_) threads.push_back(std::move(in.thread));
    inflight_.clear();
    for (auto& t : done_) threads.push_back(std::move(t));
    done_.clear();
  }
  for (auto& t : threads) {
    if (t.joinable()) t.join();
  }
}

void ImagePuller::ReapLocked() {
  for (auto it = inflight_.begin(); it != inflight_.end();) {
    if (it->second.result.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
      done_.push_back(std::move(it->second.thread));
      it = inflight_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& t : done_) {
    if (t.joinable()) t.join();  // finished: joins at once
  }
  done_.clear();
}

std::shared_future<PullOutcome> ImagePuller::Pull(const std::string& image,
                                                  const Keyring& keyring) {
  std::string key;
  std::string domain;
  try {
    ImageReference ref = ParseImageReference(image);
    key = ref.String();
    domain = ref.domain;
  } catch (const Error& e) {
    std::promise<PullOutcome> p;
    p.set_value(PullOutcome{false, e.what(), {}, 0, ""});
    return p.get_future().share();
  }
  // Pulls with other credentials for the registry are not shared (one
  // without a secret must not succeed on another pod's).
  for (const auto& [host, cred] : keyring) {
    key += "\n" + host + "\n" + cred.username + "\n" + Sha256Digest(cred.password);
  }
  std::lock_guard lock(mu_);
  ReapLocked();
  if (auto it = inflight_.find(key); it != inflight_.end()) return it->second.result;
  auto promise = std::make_shared<std::promise<PullOutcome>>();
  Inflight in;
  in.result = promise->get_future().share();
  in.thread = std::thread([this, image, keyring, promise] {
    auto t0 = Clock::now();
    PullOutcome out;
    try {
      PulledImage pulled = client_.Pull(image, keyring);
      store_.AddPulled(pulled);
      out.ok = true;
      out.size = pulled.size;
      out.repo_digest = pulled.repo_digest;
    } catch (const std::exception& e) {
      out.error = e.what();
    }
    out.took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
    promise->set_value(out);
  });
  auto result = in.result;
  inflight_.emplace(key, std::move(in));
  return result;
}

}  // namespace kin
