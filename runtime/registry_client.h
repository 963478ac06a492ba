// RegistryClient — pulling images as a node does: the OCI distribution API
// (Docker Registry HTTP API v2) over HTTPS, or plain HTTP for registries
// the cluster config lists as insecure.
//
// A pull of "busybox" (normalized as Docker does: docker.io/library/busybox:latest)
// tries each of its registry's mirrors in order (RegistryOptions::mirrors),
// then the registry itself (docker.io is served by registry-1.docker.io);
// an endpoint that fails hands over to the next, and the error of the last
// one is reported, naming each endpoint's. At an endpoint:
//  - GET /v2/<repo>/manifests/<tag|digest> accepting OCI index and manifest
//    and Docker manifest list and v2 manifest; an index is resolved to its
//    linux/amd64 manifest. A manifest asked for by digest must hash to it.
//  - the config and each layer: GET /v2/<repo>/blobs/<digest>, streamed into
//    the blob store (<blob_dir>/sha256/<hex>) through a temp file, hashed on
//    the way and renamed into place only when the sha256 matches; a blob
//    the store holds already is not fetched again. A mismatch is Invalid
//    naming the digest.
//  - auth: anonymous first; a 401 with `WWW-Authenticate: Bearer realm=..,
//    service=..,scope=..` gets a token from the realm (with Basic
//    credentials when the keyring has some for the registry) and retries;
//    a 401 with a Basic challenge retries with the credentials.
//    Credentials come from imagePullSecrets (ParseDockerConfig).
//  - redirects (blob storage elsewhere) are followed without credentials.
//
// ImagePuller puts pulled images into an ImageStore (under the reference's
// normalized name and its repo digest) and runs each pull on a thread of
// its own; concurrent pulls of one image with the same credentials share
// one pull.
//
// Errors: kin::Error. NotFound when the registry does not know the
// repository or tag; Unauthorized/Forbidden as the registry answers;
// Unavailable for transport failures; Invalid for a malformed reference or
// manifest or a digest mismatch. Messages name the reference and endpoint.
//
// Thread-safety: ParseImageReference and the other free functions are pure.
// A RegistryClient may be used by several threads at once (each request has
// its own curl handle). ImagePuller is thread-safe.
#pragma once

#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/http_client.h"
#include "base/yaml.h"

namespace kin {

class ImageStore;

// A reference split as Docker's reference package does, normalized:
// "busybox" -> {docker.io, library/busybox, latest, ""};
// "127.0.0.1:5000/a/b@sha256:..." -> {127.0.0.1:5000, a/b, "", sha256:...}.
struct ImageReference {
  std::string domain;      // "docker.io", "registry.k8s.io", "127.0.0.1:5000"
  std::string repository;  // "library/busybox"
  std::string tag;         // "latest" ("" when only a digest is given)
  std::string digest;      // "sha256:<64 hex>" or ""

  std::string Name() const { return domain + "/" + repository; }
  // The normalized reference (NormalizeImageName's form).
  std::string String() const;
  // What a manifest is asked for by: the digest when there is one, else the tag.
  std::string ManifestRef() const { return digest.empty() ? tag : digest; }
};
// Invalid (naming the reference) for what Docker rejects: upper case in the
// repository, empty path components, a bad tag or digest.
ImageReference ParseImageReference(std::string_view image);

// One challenge of a WWW-Authenticate header: scheme ("Bearer", "Basic",
// lower case kept as sent) and its parameters (keys lower-cased).
struct AuthChallenge {
  std::string scheme;
  std::map<std::string, std::string> params;
};
// All challenges of the header, in order; [] when it holds none.
std::vector<AuthChallenge> ParseWwwAuthenticate(std::string_view header);

struct RegistryCredential {
  std::string username;
  std::string password;
};
// Registry host ("docker.io", "127.0.0.1:5000") -> credentials.
using Keyring = std::map<std::string, RegistryCredential>;
// The registry host a docker config key names: "https://index.docker.io/v1/"
// -> "docker.io", "http://127.0.0.1:5000/x" -> "127.0.0.1:5000".
std::string RegistryHostOfKey(std::string_view key);
// Adds the entries of a .dockerconfigjson ({"auths": {...}}) or a legacy
// .dockercfg (the map itself) to `keyring`: `auth` (base64 user:password)
// or username and password. Invalid naming `what` when malformed.
void ParseDockerConfig(const std::string& json, const std::string& what, Keyring& keyring);

// The descriptor of an index (OCI index / Docker manifest list) for
// linux/amd64. Invalid naming `what` when it lists none.
Json SelectPlatformManifest(const Json& index, const std::string& what);

// "sha256:<hex>" of `data`.
std::string Sha256Digest(std::string_view data);

// The wire, so unit tests can stand a fake in for HTTP.
class RegistryTransport {
 public:
  virtual ~RegistryTransport() = default;
  // GET `url`. For a 2xx answer with `on_body` set, the body goes there
  // (false ends the transfer); otherwise it is in the response's body.
  // Throws Unavailable for transport failures.
  virtual http::ClientResponse Get(const std::string& url, const http::Headers& headers,
                                   const std::function<bool(std::string_view)>& on_body) = 0;
};
// libcurl: `ca_file` adds a CA to trust (empty: the system's).
std::shared_ptr<RegistryTransport> CurlRegistryTransport(std::string ca_file = "");

struct RegistryOptions {
  // Registry host -> mirror endpoints tried before it, in order
  // ("http://127.0.0.1:5000", "https://mirror.example"; no scheme: https,
  // or http when the host is insecure).
  std::map<std::string, std::vector<std::string>> mirrors;
  // Hosts ("127.0.0.1:5000") spoken to over plain HTTP.
  std::set<std::string> insecure;
  std::string ca_file;                     // an extra CA for HTTPS registries (empty: the system's)
  std::chrono::seconds blob_timeout{600};  // a whole blob download
};

struct PulledImage {
  std::string reference;    // normalized: "docker.io/library/busybox:latest"
  std::string repo_digest;  // "docker.io/library/busybox@sha256:<manifest digest>"
  std::string config;       // the image config blob's text
  std::string config_digest;
  std::vector<std::string> layers;  // blob files, lowest layer first
  int64_t size = 0;                 // bytes of config and layers
  std::string endpoint;             // the endpoint that served it
};

class RegistryClient {
 public:
  // `blob_dir`: the content-addressed blob store (blobs under sha256/).
  RegistryClient(RegistryOptions opts, std::string blob_dir,
                 std::shared_ptr<RegistryTransport> transport = nullptr);

  PulledImage Pull(const std::string& image, const Keyring& keyring) const;
  // Endpoints for a registry host, in the order tried: mirrors, then itself.
  std::vector<std::string> Endpoints(const std::string& domain) const;
  // Where blob `digest` is kept (whether or not it is there).
  std::string BlobPath(const std::string& digest) const;

 private:
  class Session;
  RegistryOptions opts_;
  std::string blob_dir_;
  std::shared_ptr<RegistryTransport> transport_;
};

struct PullOutcome {
  bool ok = false;
  std::string error;  // when !ok: the registry's error
  std::chrono::milliseconds took{0};
  int64_t size = 0;
  std::string repo_digest;
};

class ImagePuller {
 public:
  // `store` outlives the puller. Blobs live under <store dir>/blobs.
  ImagePuller(ImageStore& store, RegistryOptions opts, std::string blob_dir,
              std::shared_ptr<RegistryTransport> transport = nullptr);
  ~ImagePuller();  // waits for pulls under way
  ImagePuller(const ImagePuller&) = delete;
  ImagePuller& operator=(const ImagePuller&) = delete;

  // Starts a pull of `image` into the store, or joins the one under way
  // with the same credentials for its registry.
  std::shared_future<PullOutcome> Pull(const std::string& image, const Keyring& keyring);

  const RegistryClient& client() const { return client_; }

 private:
  struct Inflight {
    std::shared_future<PullOutcome> result;
    std::thread thread;
  };
  void ReapLocked();

  ImageStore& store_;
  RegistryClient client_;
  std::mutex mu_;
  std::map<std::string, Inflight> inflight_;  // key: reference + credentials
  std::vector<std::thread> done_;             // finished, to be joined
};

}  // namespace kin
