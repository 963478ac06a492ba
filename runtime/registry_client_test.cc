#include "runtime/registry_client.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "base/error.h"
#include "base/file.h"
#include "base/http_server.h"
#include "base/process.h"
#include "base/strings.h"
#include "runtime/image_store.h"
#include "testing/e2e_support.h"

namespace kin {
namespace {

namespace fs = std::filesystem;

TEST(ImageReferenceTest, NormalizesAsDocker) {
  ImageReference r = ParseImageReference("busybox");
  EXPECT_EQ(r.domain, "docker.io");
  EXPECT_EQ(r.repository, "library/busybox");
  EXPECT_EQ(r.tag, "latest");
  EXPECT_EQ(r.String(), "docker.io/library/busybox:latest");

  const std::string d = "sha256:" + std::string(64, 'a');
  r = ParseImageReference("127.0.0.1:5000/test/x@" + d);
  EXPECT_EQ(r.domain, "127.0.0.1:5000");
  EXPECT_EQ(r.repository, "test/x");
  EXPECT_EQ(r.tag, "");
  EXPECT_EQ(r.digest, d);
  EXPECT_EQ(r.ManifestRef(), d);
  EXPECT_EQ(ParseImageReference("localhost/a:1").domain, "localhost");
  EXPECT_EQ(ParseImageReference("org/app:v1.2").String(), "docker.io/org/app:v1.2");
}

TEST(ImageReferenceTest, RejectsWhatDockerRejects) {
  for (const char* bad : {"Busybox", "a//b", "x:bad/tag!", "x@sha256:abc", "x@md5:00", "-x"}) {
    try {
      ParseImageReference(bad);
      ADD_FAILURE() << bad << " parsed";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kInvalid) << bad;
    }
  }
}

TEST(WwwAuthenticateTest, ParsesBearerAndBasic) {
  auto c = ParseWwwAuthenticate(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull")");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].scheme, "Bearer");
  EXPECT_EQ(c[0].params["realm"], "https://auth.docker.io/token");
  EXPECT_EQ(c[0].params["service"], "registry.docker.io");
  EXPECT_EQ(c[0].params["scope"], "repository:library/busybox:pull");

  c = ParseWwwAuthenticate(R"(Basic realm="basic-realm", Bearer Realm=x, error="a\"b")");
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].scheme, "Basic");
  EXPECT_EQ(c[0].params["realm"], "basic-realm");
  EXPECT_EQ(c[1].params["realm"], "x");
  EXPECT_EQ(c[1].params["error"], "a\"b");
  EXPECT_TRUE(ParseWwwAuthenticate("").empty());
}

TEST(DockerConfigTest, ReadsAuthAndUsernamePassword) {
  Keyring k;
  ParseDockerConfig(R"({"auths": {"https://index.docker.io/v1/": {"auth": ")" +
                        Base64Encode("me:secret") +
                        R"("}, "http://127.0.0.1:5000": {"username": "u", "password": "p"}}})",
                    "secret default/x", k);
  EXPECT_EQ(k["docker.io"].username, "me");
  EXPECT_EQ(k["docker.io"].password, "secret");
  EXPECT_EQ(k["127.0.0.1:5000"].username, "u");
  EXPECT_EQ(k["127.0.0.1:5000"].password, "p");
  // A legacy .dockercfg is the map itself.
  Keyring legacy;
  ParseDockerConfig(R"({"quay.io": {"auth": ")" + Base64Encode("a:b") + "\"}}", "x", legacy);
  EXPECT_EQ(legacy["quay.io"].password, "b");
  EXPECT_THROW(ParseDockerConfig(R"({"auths": {"h": {"auth": "!!"}}})", "x", k), Error);
  EXPECT_THROW(ParseDockerConfig("[]", "x", k), Error);
}

TEST(PlatformTest, SelectsLinuxAmd64) {
  Json index = Json::parse(R"({"manifests": [
    {"digest": "sha256:1", "platform": {"os": "linux", "architecture": "arm64"}},
    {"digest": "sha256:2", "platform": {"os": "windows", "architecture": "amd64"}},
    {"digest": "sha256:3", "platform": {"os": "linux", "architecture": "amd64"}}]})");
  EXPECT_EQ(SelectPlatformManifest(index, "x")["digest"], "sha256:3");
  index["manifests"].erase(2);
  try {
    SelectPlatformManifest(index, "image index x");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("linux/amd64"), std::string::npos);
  }
}

// A registry in memory: manifests and blobs by path, a bearer token realm,
// and a record of the requests.
class FakeRegistry : public RegistryTransport {
 public:
  std::map<std::string, std::pair<std::string, std::string>> manifests;  // url -> (type, body)
  std::map<std::string, std::string> blobs;                              // url -> body
  std::string token_realm;       // when set: bearer auth required
  std::string basic;             // token realm wants this Basic header ("" none)
  std::set<std::string> broken;  // endpoint prefixes that fail
  std::vector<std::string> requests;

  http::ClientResponse Get(const std::string& url, const http::Headers& headers,
                           const std::function<bool(std::string_view)>& on_body) override {
    requests.push_back(url);
    http::ClientResponse r;
    for (const auto& b : broken) {
      if (url.rfind(b, 0) == 0) throw Error::Unavailable("GET " + url + ": connection refused");
    }
    auto auth = headers.find("Authorization");
    if (!token_realm.empty() && url.rfind(token_realm, 0) == 0) {
      if (!basic.empty() && (auth == headers.end() || auth->second != basic)) {
        r.status = 401;
        r.body = R"({"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]})";
        return r;
      }
      r.status = 200;
      r.body = R"({"token": "tok"})";
      return r;
    }
    if (!token_realm.empty() && (auth == headers.end() || auth->second != "Bearer tok")) {
      r.status = 401;
      r.headers.emplace(
          "WWW-Authenticate",
          "Bearer realm=\"" + token_realm + "\",service=\"fake\",scope=\"repository:a/b:pull\"");
      return r;
    }
    if (auto it = manifests.find(url); it != manifests.end()) {
      r.status = 200;
      r.headers.emplace("Content-Type", it->second.first);
      r.body = it->second.second;
      return r;
    }
    if (auto it = blobs.find(url); it != blobs.end()) {
      r.status = 200;
      if (on_body) {
        on_body(it->second);
      } else {
        r.body = it->second;
      }
      return r;
    }
    r.status = 404;
    r.body = R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]})";
    return r;
  }
};

class RegistryClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake_ = std::make_shared<FakeRegistry>();
    config_ = R"({"config": {"Cmd": ["sh"]}})";
    if (layer_.empty()) layer_ = "layer bytes";
    const std::string base = "https://reg.test/v2/a/b/";
    fake_->blobs[base + "blobs/" + Sha256Digest(config_)] = config_;
    fake_->blobs[base + "blobs/" + Sha256Digest(layer_)] = layer_;
    manifest_ = Json{{"schemaVersion", 2},
                     {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                     {"config", {{"digest", Sha256Digest(config_)}, {"size", config_.size()}}},
                     {"layers", {{{"digest", Sha256Digest(layer_)}, {"size", layer_.size()}}}}}
                    .dump();
    Json index = {{"schemaVersion", 2},
                  {"mediaType", "application/vnd.oci.image.index.v1+json"},
                  {"manifests",
                   {{{"digest", "sha256:" + std::string(64, '0')},
                     {"platform", {{"os", "linux"}, {"architecture", "arm64"}}}},
                    {{"digest", Sha256Digest(manifest_)},
                     {"platform", {{"os", "linux"}, {"architecture", "amd64"}}}}}}};
    index_ = index.dump();
    fake_->manifests[base + "manifests/1"] = {"application/vnd.oci.image.index.v1+json", index_};
    fake_->manifests[base + "manifests/" + Sha256Digest(manifest_)] = {
        "application/vnd.oci.image.manifest.v1+json", manifest_};
  }
  RegistryClient Client(RegistryOptions o = {}) {
    return RegistryClient(std::move(o), dir_.path() + "/blobs", fake_);
  }

  testing::TempDir dir_;
  std::shared_ptr<FakeRegistry> fake_;
  std::string config_, layer_, manifest_, index_;
};

TEST_F(RegistryClientTest, PullsThroughAnIndexAndStoresVerifiedBlobsOnce) {
  RegistryClient c = Client();
  PulledImage p = c.Pull("reg.test/a/b:1", {});
  EXPECT_EQ(p.reference, "reg.test/a/b:1");
  EXPECT_EQ(p.repo_digest, "reg.test/a/b@" + Sha256Digest(index_));
  EXPECT_EQ(p.config, config_);
  ASSERT_EQ(p.layers.size(), 1u);
  EXPECT_EQ(p.layers[0], c.BlobPath(Sha256Digest(layer_)));
  EXPECT_EQ(ReadFileIfExists(p.layers[0]).value_or(""), layer_);
  EXPECT_EQ(p.size, static_cast<int64_t>(config_.size() + layer_.size()));

  fake_->requests.clear();
  c.Pull("reg.test/a/b:1", {});
  for (const auto& r : fake_->requests) {
    EXPECT_EQ(r.find("/blobs/"), std::string::npos) << "fetched again: " << r;
  }
  // Only blobs in the store, no temp files left.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir_.path() + "/blobs/sha256")) {
    EXPECT_EQ(e.path().filename().string().rfind(".tmp", 0), std::string::npos);
    ++files;
  }
  EXPECT_EQ(files, 2);
}

TEST_F(RegistryClientTest, ADigestMismatchIsAnErrorNamingTheDigest) {
  std::string digest = Sha256Digest(layer_);
  fake_->blobs["https://reg.test/v2/a/b/blobs/" + digest] = "tampered";
  try {
    Client().Pull("reg.test/a/b:1", {});
    FAIL() << "pulled";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalid);
    EXPECT_NE(std::string(e.what()).find(digest), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("mismatch"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir_.path() + "/blobs/sha256/" + digest.substr(7)));
  // A manifest asked for by digest must hash to it.
  std::string wrong = "sha256:" + std::string(64, 'b');
  fake_->manifests["https://reg.test/v2/a/b/manifests/" + wrong] = {"x", manifest_};
  try {
    Client().Pull("reg.test/a/b@" + wrong, {});
    FAIL() << "pulled";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(wrong), std::string::npos) << e.what();
  }
}

TEST_F(RegistryClientTest, UnknownTagIsNotFound) {
  try {
    Client().Pull("reg.test/a/b:2", {});
    FAIL() << "pulled";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound);
    EXPECT_NE(std::string(e.what()).find("MANIFEST_UNKNOWN"), std::string::npos) << e.what();
  }
}

TEST_F(RegistryClientTest, BearerTokenFlowWithBasicCredentials) {
  fake_->token_realm = "https://auth.test/token";
  fake_->basic = "Basic " + Base64Encode("u:p");
  try {
    Client().Pull("reg.test/a/b:1", {});
    FAIL() << "pulled without credentials";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnauthorized) << e.what();
  }
  Keyring k{{"reg.test", {"u", "p"}}};
  PulledImage p = Client().Pull("reg.test/a/b:1", k);
  EXPECT_EQ(p.config, config_);
  bool asked = false;
  for (const auto& r : fake_->requests) {
    if (r == "https://auth.test/token?service=fake&scope=repository%3Aa%2Fb%3Apull") asked = true;
  }
  EXPECT_TRUE(asked);
}

TEST_F(RegistryClientTest, MirrorsFirstThenTheRegistry) {
  RegistryOptions o;
  o.mirrors["reg.test"] = {"http://mirror1.test", "mirror2.test"};
  o.insecure = {"mirror2.test"};
  RegistryClient c = Client(o);
  EXPECT_EQ(
      c.Endpoints("reg.test"),
      (std::vector<std::string>{"http://mirror1.test", "http://mirror2.test", "https://reg.test"}));
  EXPECT_EQ(c.Endpoints("docker.io"), std::vector<std::string>{"https://registry-1.docker.io"});
  fake_->broken = {"http://mirror1.test"};  // refuses; mirror2 has nothing (404)
  PulledImage p = c.Pull("reg.test/a/b:1", {});
  EXPECT_EQ(p.endpoint, "https://reg.test");
  // All failing: the error names each endpoint's.
  fake_->broken.insert("https://reg.test");
  try {
    c.Pull("reg.test/a/b:1", {});
    FAIL();
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("mirror1.test"), std::string::npos) << m;
    EXPECT_NE(m.find("mirror2.test"), std::string::npos) << m;
    EXPECT_NE(m.find("https://reg.test"), std::string::npos) << m;
  }
}

// Holds every request until opened, counting them.
class GatedRegistry : public RegistryTransport {
 public:
  explicit GatedRegistry(std::shared_ptr<FakeRegistry> inner) : inner_(std::move(inner)) {}
  http::ClientResponse Get(const std::string& url, const http::Headers& headers,
                           const std::function<bool(std::string_view)>& on_body) override {
    gate_.wait();
    std::lock_guard lock(mu_);
    ++requests_;
    return inner_->Get(url, headers, on_body);
  }
  void Open() { open_.set_value(); }
  int requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  std::shared_ptr<FakeRegistry> inner_;
  std::promise<void> open_;
  std::shared_future<void> gate_ = open_.get_future().share();
  std::mutex mu_;
  int requests_ = 0;
};

TEST_F(RegistryClientTest, PullerSharesConcurrentPullsAndStoresTheImage) {
  // A real layer: one file.
  fs::create_directories(dir_.path() + "/layer/etc");
  testing::WriteFile(dir_.path() + "/layer/etc/hello", "hi\n");
  ASSERT_TRUE(RunCommand({"tar", "-C", dir_.path() + "/layer", "-cf", dir_.path() + "/l.tar", "."})
                  .status.success());
  layer_ = testing::ReadFile(dir_.path() + "/l.tar");
  SetUp();  // the manifests again, for this layer
  ImageStore store(ImageStoreOptions{dir_.path() + "/store", "/bin/true", {}, "/bin/busybox"});
  auto gated = std::make_shared<GatedRegistry>(fake_);
  int alone = 0;
  {
    ImagePuller puller(store, {}, store.BlobDir(), gated);
    auto a = puller.Pull("reg.test/a/b:1", {});
    auto b = puller.Pull("reg.test/a/b:1", {});
    gated->Open();
    ASSERT_TRUE(a.get().ok) << a.get().error;
    ASSERT_TRUE(b.get().ok);
    alone = gated->requests();
    EXPECT_EQ(alone, 4);  // index, manifest, config, layer: once
    EXPECT_EQ(a.get().repo_digest, "reg.test/a/b@" + Sha256Digest(index_));
    // A failing pull says why.
    PullOutcome bad = puller.Pull("reg.test/a/b:nope", {}).get();
    EXPECT_FALSE(bad.ok);
    EXPECT_NE(bad.error.find("MANIFEST_UNKNOWN"), std::string::npos) << bad.error;
    EXPECT_FALSE(puller.Pull("Bad/Name", {}).get().ok);
  }
  ImageConfig c = store.Resolve("reg.test/a/b:1");
  EXPECT_EQ(c.image_id, "reg.test/a/b@" + Sha256Digest(index_));
  EXPECT_EQ(c.cmd, std::vector<std::string>{"sh"});
  ASSERT_EQ(c.layers.size(), 1u);
  EXPECT_EQ(testing::ReadFile(c.layers[0] + "/etc/hello"), "hi\n");
  // Also under its repo digest.
  EXPECT_EQ(store.Resolve("reg.test/a/b@" + Sha256Digest(index_)).layers, c.layers);
}

// The bearer flow over real HTTP (base/http_server.h): the registry answers
// 401 with a Bearer challenge naming the token server, which wants Basic
// credentials and hands out a token the registry then accepts.
TEST(RegistryHttpTest, BearerTokenFlowOverHttp) {
  const std::string config = R"({"config": {"Entrypoint": ["/e"]}})";
  const std::string manifest = Json{
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.docker.distribution.manifest.v2+json"},
      {"config", {{"digest", Sha256Digest(config)}, {"size", config.size()}}},
      {"layers", Json::array()}}.dump();
  std::atomic<int> token_requests{0};
  std::string scope_seen;
  http::Server auth(http::ServerOptions{}, [&](http::Request& req, http::Response& resp) {
    ++token_requests;
    scope_seen = req.Query("scope");
    if (req.Header("Authorization") != "Basic " + Base64Encode("u:p")) {
      resp.Set(401, "application/json", R"({"errors":[{"code":"DENIED","message":"no"}]})");
      return;
    }
    resp.Set(200, "application/json", R"({"access_token": "t0k"})");
  });
  auth.Start();
  const std::string realm = "http://127.0.0.1:" + std::to_string(auth.port()) + "/token";
  http::Server registry(http::ServerOptions{}, [&](http::Request& req, http::Response& resp) {
    if (req.Header("Authorization") != "Bearer t0k") {
      resp.status = 401;
      resp.headers.emplace("WWW-Authenticate", "Bearer realm=\"" + realm +
                                                   "\",service=\"test\",scope=\"repository:"
                                                   "a/b:pull\"");
      resp.body = R"({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]})";
      return;
    }
    if (req.path == "/v2/a/b/manifests/1") {
      resp.Set(200, "application/vnd.docker.distribution.manifest.v2+json", manifest);
    } else if (req.path == "/v2/a/b/blobs/" + Sha256Digest(config)) {
      resp.Set(200, "application/octet-stream", config);
    } else {
      resp.Set(404, "application/json", R"({"errors":[{"code":"BLOB_UNKNOWN","message":"x"}]})");
    }
  });
  registry.Start();
  const std::string host = "127.0.0.1:" + std::to_string(registry.port());
  RegistryOptions o;
  o.insecure = {host};
  testing::TempDir dir;
  RegistryClient client(o, dir.path() + "/blobs");
  try {
    client.Pull(host + "/a/b:1", {});
    FAIL() << "pulled without credentials";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnauthorized) << e.what();
    EXPECT_NE(std::string(e.what()).find("DENIED"), std::string::npos) << e.what();
  }
  PulledImage p = client.Pull(host + "/a/b:1", {{host, {"u", "p"}}});
  EXPECT_EQ(p.config, config);
  EXPECT_EQ(p.repo_digest, host + "/a/b@" + Sha256Digest(manifest));
  EXPECT_EQ(scope_seen, "repository:a/b:pull");
  EXPECT_EQ(token_requests.load(), 2);  // one refused, one per pull after that
  registry.Stop();
  auth.Stop();
}

}  // namespace
}  // namespace kin
