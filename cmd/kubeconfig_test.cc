#include "cmd/kubeconfig.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <thread>

#include "base/error.h"
#include "base/http_server.h"
#include "base/process.h"
#include "base/tls.h"
#include "testing/e2e_support.h"

namespace kin::cmd {
namespace {

using kin::testing::ReadFile;
using kin::testing::TempDir;
using kin::testing::WriteFile;

std::string Unbase64(const std::string& in) {
  std::string out;
  int bits = 0;
  uint32_t acc = 0;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if (c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if (c == '+')
      v = 62;
    else if (c == '/')
      v = 63;
    else
      break;  // '=' padding
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

KubeconfigEntry Entry(const std::string& name = "dev", int port = 6443) {
  return KubeconfigEntry{.cluster_name = name,
                         .server = "https://127.0.0.1:" + std::to_string(port),
                         .ca_pem = "CA",
                         .client_cert_pem = "CERT",
                         .client_key_pem = "KEY"};
}

// A kubeconfig as a user might have it: another cloud cluster with an exec
// plugin, preferences, extensions, YAML 1.1 values, comments.
const char* kUserConfig = R"(# my clusters
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: QUJD
    server: https://34.1.2.3
    extensions:
    - name: client.authentication.k8s.io/exec
      extension:
        audience: foo
  name: gke_proj_zone_prod
- cluster:
    server: https://10.0.0.1:6443
    insecure-skip-tls-verify: yes
    proxy-url: socks5://localhost:1080
  name: lab
contexts:
- context:
    cluster: gke_proj_zone_prod
    user: gke_proj_zone_prod
    namespace: web
  name: gke_proj_zone_prod
- context: {cluster: lab, user: lab}
  name: lab
current-context: gke_proj_zone_prod
preferences:
  colors: true
users:
- name: gke_proj_zone_prod
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: gke-gcloud-auth-plugin
      args: null
      env:
      - name: FOO
        value: "1"
      installHint: Install gke-gcloud-auth-plugin
      provideClusterInfo: true
      interactiveMode: IfAvailable
- name: lab
  user:
    token: "0755"
    username: admin
extensions:
- name: my-extension
  extension: {answer: 42, mode: 0755}
)";

// The user's config as kubectl reads it (YAML 1.1: `yes`, 0755).
Json UserConfigAsKubectlReadsIt() {
  Json c = ParseYaml(kUserConfig);
  c["clusters"][1]["cluster"]["insecure-skip-tls-verify"] = true;
  c["extensions"][0]["extension"]["mode"] = 493;
  return c;
}

// `config` without the entries named `name` and without current-context.
Json Without(Json config, const std::string& name) {
  for (const char* key : {"clusters", "users", "contexts"}) {
    Json kept = Json::array();
    for (auto& item : config[key]) {
      if (item["name"] != name) kept.push_back(item);
    }
    config[key] = kept;
  }
  config.erase("current-context");
  return config;
}

TEST(KubeconfigTest, RendersLikeKind) {
  EXPECT_EQ(RenderKubeconfig(Entry()), R"(apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://127.0.0.1:6443
  name: kin-dev
contexts:
- context:
    cluster: kin-dev
    user: kin-dev
  name: kin-dev
current-context: kin-dev
kind: Config
preferences: {}
users:
- name: kin-dev
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
)");
  KubeconfigEntry e = Entry();
  e.ca_pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  Json c = KubeconfigFor(e);
  EXPECT_EQ(Unbase64(c["clusters"][0]["cluster"]["certificate-authority-data"]), e.ca_pem);
  EXPECT_THROW(KubeconfigFor(KubeconfigEntry{}), Error);
}

TEST(KubeconfigTest, MergeIntoMissingFileCreatesItAndItsDirectory) {
  TempDir tmp;
  std::string path = tmp.File("home/.kube/config");
  MergeKubeconfig(path, Entry());
  EXPECT_EQ(ReadFile(path), RenderKubeconfig(Entry()));
  EXPECT_EQ(ModeOf(path), 0600u);
  EXPECT_FALSE(std::filesystem::exists(path + ".lock"));
  // No temp files left beside it.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(tmp.File("home/.kube")),
                          std::filesystem::directory_iterator()),
            1);
}

TEST(KubeconfigTest, MergeIntoEmptyFileKeepsItsMode) {
  TempDir tmp;
  std::string path = tmp.File("config");
  WriteFile(path, "# nothing yet\n");
  ::chmod(path.c_str(), 0640);
  MergeKubeconfig(path, Entry());
  EXPECT_EQ(ReadKubeconfig(path), KubeconfigFor(Entry()));
  EXPECT_EQ(ModeOf(path), 0640u);
}

TEST(KubeconfigTest, MergeKeepsEverythingElse) {
  TempDir tmp;
  std::string path = tmp.File("config");
  WriteFile(path, kUserConfig);
  ::chmod(path.c_str(), 0600);
  MergeKubeconfig(path, Entry());
  Json after = ReadKubeconfig(path);
  EXPECT_EQ(Without(after, "kin-dev"), Without(UserConfigAsKubectlReadsIt(), "kin-dev"));
  EXPECT_EQ(after["current-context"], "kin-dev");
  EXPECT_EQ(after["clusters"].size(), 3u);
  EXPECT_EQ(after["clusters"][2], KubeconfigFor(Entry())["clusters"][0]);  // appended
  EXPECT_EQ(after["users"][2], KubeconfigFor(Entry())["users"][0]);
  EXPECT_EQ(after["contexts"][2], KubeconfigFor(Entry())["contexts"][0]);
  EXPECT_EQ(ModeOf(path), 0600u);
  // YAML 1.1 values are written so that every reader agrees on them.
  std::string text = ReadFile(path);
  EXPECT_NE(text.find("insecure-skip-tls-verify: true\n"), std::string::npos) << text;
  EXPECT_NE(text.find("token: \"0755\"\n"), std::string::npos) << text;
}

// Plain scalars whose meaning differs between YAML 1.2 (kin's codec) and
// YAML 1.1 (kubectl); the kubectl test below checks kubectl agrees.
const char* kYaml11Scalars =
    "extensions:\n- name: scalars\n  extension: {a: yes, b: Off, c: 0755, d: 1_000, e: 08, "
    "f: 0x1F, g: 1.5, h: ~, i: \"yes\", j: 0b101, k: .5, l: 1e3, m: hello, n: -0o17, o: y}\n";

TEST(KubeconfigTest, ReadsPlainScalarsAsKubectlDoes) {
  TempDir tmp;
  WriteFile(tmp.File("config"), kYaml11Scalars);
  Json got = ReadKubeconfig(tmp.File("config"))["extensions"][0]["extension"];
  EXPECT_EQ(got, Json::parse(R"({"a": true, "b": false, "c": 493, "d": 1000, "e": 8.0, "f": 31,
      "g": 1.5, "h": null, "i": "yes", "j": 5, "k": 0.5, "l": 1000.0, "m": "hello",
      "false": -15, "o": true})"));  // the key `n` is false to YAML 1.1
}

TEST(KubeconfigTest, MergeAgainReplacesInPlace) {
  TempDir tmp;
  std::string path = tmp.File("config");
  MergeKubeconfig(path, Entry("dev", 1111));
  MergeKubeconfig(path, Entry("prod", 2222));
  EXPECT_EQ(ReadKubeconfig(path)["current-context"], "kin-prod");
  MergeKubeconfig(path, Entry("dev", 3333));
  Json c = ReadKubeconfig(path);
  ASSERT_EQ(c["clusters"].size(), 2u);
  EXPECT_EQ(c["clusters"][0]["name"], "kin-dev");
  EXPECT_EQ(c["clusters"][0]["cluster"]["server"], "https://127.0.0.1:3333");
  EXPECT_EQ(c["clusters"][1]["cluster"]["server"], "https://127.0.0.1:2222");
  EXPECT_EQ(c["users"].size(), 2u);
  EXPECT_EQ(c["contexts"].size(), 2u);
  EXPECT_EQ(c["current-context"], "kin-dev");
}

TEST(KubeconfigTest, MergeReplacesNullListsKubectlWrites) {
  TempDir tmp;
  std::string path = tmp.File("config");
  WriteFile(path,
            "apiVersion: v1\nclusters: null\ncontexts: null\ncurrent-context: \"\"\n"
            "kind: Config\npreferences: {}\nusers: null\n");
  MergeKubeconfig(path, Entry());
  EXPECT_EQ(ReadKubeconfig(path), KubeconfigFor(Entry()));
}

TEST(KubeconfigTest, RemoveLeavesEverythingElse) {
  TempDir tmp;
  std::string path = tmp.File("config");
  WriteFile(path, kUserConfig);
  MergeKubeconfig(path, Entry("dev"));
  MergeKubeconfig(path, Entry("prod"));
  EXPECT_TRUE(RemoveFromKubeconfig(path, "dev"));
  Json c = ReadKubeconfig(path);
  EXPECT_EQ(c["current-context"], "kin-prod");  // not pointing at dev: kept
  EXPECT_TRUE(RemoveFromKubeconfig(path, "prod"));
  c = ReadKubeconfig(path);
  EXPECT_FALSE(c.contains("current-context"));  // it named prod: unset
  Json want = UserConfigAsKubectlReadsIt();
  want.erase("current-context");
  EXPECT_EQ(c, want);
}

TEST(KubeconfigTest, RemoveWithNothingToRemoveTouchesNothing) {
  TempDir tmp;
  std::string missing = tmp.File("missing/config");
  EXPECT_FALSE(RemoveFromKubeconfig(missing, "dev"));
  EXPECT_FALSE(std::filesystem::exists(tmp.File("missing")));

  std::string path = tmp.File("config");
  WriteFile(path, kUserConfig);
  struct stat before {};
  ::stat(path.c_str(), &before);
  EXPECT_FALSE(RemoveFromKubeconfig(path, "dev"));
  EXPECT_EQ(ReadFile(path), kUserConfig);  // byte for byte, comments and all
  struct stat after {};
  ::stat(path.c_str(), &after);
  EXPECT_EQ(after.st_ino, before.st_ino);  // not even rewritten
}

TEST(KubeconfigTest, MalformedFileIsAnErrorNamingFileAndLineAndStaysUntouched) {
  TempDir tmp;
  std::string path = tmp.File("config");
  std::string bad = "apiVersion: v1\nclusters:\n- name: a\n  cluster: {server: x\nusers: []\n";
  WriteFile(path, bad);
  try {
    MergeKubeconfig(path, Entry());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kBadRequest);
    EXPECT_NE(e.message().find(path), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("line "), std::string::npos) << e.message();
  }
  EXPECT_EQ(ReadFile(path), bad);
  EXPECT_FALSE(std::filesystem::exists(path + ".lock"));
  EXPECT_THROW(RemoveFromKubeconfig(path, "dev"), Error);
  EXPECT_EQ(ReadFile(path), bad);

  for (const char* not_kubeconfig : {"- a\n- b\n", "clusters: {a: b}\n", "users: text\n"}) {
    WriteFile(path, not_kubeconfig);
    try {
      MergeKubeconfig(path, Entry());
      FAIL() << "expected an error for " << not_kubeconfig;
    } catch (const Error& e) {
      EXPECT_NE(e.message().find(path + " is not a kubeconfig"), std::string::npos) << e.message();
    }
    EXPECT_EQ(ReadFile(path), not_kubeconfig);
  }
}

TEST(KubeconfigTest, MergeWritesThroughASymlink) {
  TempDir tmp;
  std::filesystem::create_directories(tmp.File("dotfiles"));
  WriteFile(tmp.File("dotfiles/kubeconfig"), kUserConfig);
  std::string link = tmp.File("config");
  std::filesystem::create_symlink(tmp.File("dotfiles/kubeconfig"), link);
  MergeKubeconfig(link, Entry());
  EXPECT_TRUE(std::filesystem::is_symlink(link));
  EXPECT_EQ(ReadKubeconfig(tmp.File("dotfiles/kubeconfig"))["current-context"], "kin-dev");
}

TEST(KubeconfigTest, MergeWaitsForKubectlsLockFile) {
  TempDir tmp;
  std::string path = tmp.File("config");
  WriteFile(path + ".lock", "");
  std::atomic<bool> merged{false};
  bool written_while_locked = false, returned_while_locked = false;
  std::thread release([&] {
    // The other writer's work: while it holds the lock, kin must neither
    // write the file nor return.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    written_while_locked = std::filesystem::exists(path);
    returned_while_locked = merged.load();
    std::filesystem::remove(path + ".lock");
  });
  MergeKubeconfig(path, Entry());
  merged = true;
  release.join();
  EXPECT_FALSE(written_while_locked);
  EXPECT_FALSE(returned_while_locked);
  EXPECT_EQ(ReadKubeconfig(path), KubeconfigFor(Entry()));
  EXPECT_FALSE(std::filesystem::exists(path + ".lock"));
}

class EnvGuard {
 public:
  explicit EnvGuard(const char* name) : name_(name) {
    if (const char* v = std::getenv(name)) old_ = v;
  }
  ~EnvGuard() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(KubeconfigTest, PathFollowsKubectlsRules) {
  EnvGuard kubeconfig("KUBECONFIG"), home("HOME");
  TempDir tmp;
  EXPECT_EQ(KubeconfigPath("/explicit"), "/explicit");
  ::unsetenv("KUBECONFIG");
  ::setenv("HOME", "/home/someone", 1);
  EXPECT_EQ(KubeconfigPath(), "/home/someone/.kube/config");
  ::setenv("KUBECONFIG", tmp.File("only").c_str(), 1);
  EXPECT_EQ(KubeconfigPath(), tmp.File("only"));
  std::string list = tmp.File("a") + "::" + tmp.File("b") + ":" + tmp.File("c");
  ::setenv("KUBECONFIG", list.c_str(), 1);
  EXPECT_EQ(KubeconfigPath(), tmp.File("c"));  // none exists: the last
  WriteFile(tmp.File("b"), "");
  EXPECT_EQ(KubeconfigPath(), tmp.File("b"));  // the first that exists
}

// ---- Real kubectl ----

// The fixed-version kubectl beside the one on PATH (which may be a
// dispatcher), or empty; without it these tests skip, except in CI, where
// they fail.
std::string Kubectl() {
  std::string k = kin::testing::KubectlBinary("1.31");
  if (::access(k.c_str(), X_OK) == 0) return k;
  if (const char* ci = std::getenv("CI"); ci != nullptr && std::string(ci) == "true") {
    ADD_FAILURE() << "kubectl.1.31 is not installed (" << k << "); in CI it must be";
  }
  return "";
}

TEST(KubeconfigKubectlTest, KubectlReadsTheMergedFile) {
  std::string kubectl = Kubectl();
  if (kubectl.empty()) GTEST_SKIP() << "kubectl.1.31 not installed";
  TempDir tmp;
  std::string path = tmp.File("config");
  WriteFile(path, kUserConfig);
  MergeKubeconfig(path, Entry());
  auto r = RunCommand({kubectl, "config", "view", "--kubeconfig", path, "-o", "json", "--raw"});
  ASSERT_TRUE(r.status.success()) << r.err;
  Json view = Json::parse(r.out);
  EXPECT_EQ(view["current-context"], "kin-dev");
  ASSERT_EQ(view["clusters"].size(), 3u);
  for (const Json& c : view["clusters"]) {
    if (c["name"] == "kin-dev") {
      EXPECT_EQ(Unbase64(c["cluster"]["certificate-authority-data"]), "CA");
      EXPECT_EQ(c["cluster"]["server"], "https://127.0.0.1:6443");
    }
    if (c["name"] == "lab") {
      EXPECT_EQ(c["cluster"]["insecure-skip-tls-verify"], true);
    }
  }
  EXPECT_EQ(view["contexts"].size(), 3u);
  EXPECT_EQ(view["users"].size(), 3u);

  WriteFile(tmp.File("scalars"), kYaml11Scalars);
  r = RunCommand(
      {kubectl, "config", "view", "--kubeconfig", tmp.File("scalars"), "-o", "json", "--raw"});
  ASSERT_TRUE(r.status.success()) << r.err;
  EXPECT_EQ(Json::parse(r.out)["extensions"][0]["extension"],
            ReadKubeconfig(tmp.File("scalars"))["extensions"][0]["extension"]);
}

// kubectl (Go's TLS) against kin's TLS server with the kubeconfig kin
// writes: the client certificate identifies the admin; without it, 401.
TEST(KubeconfigKubectlTest, KubectlTalksToTheTlsServer) {
  std::string kubectl = Kubectl();
  if (kubectl.empty()) GTEST_SKIP() << "kubectl.1.31 not installed";
  TempDir tmp;
  tls::PkiOptions po;
  po.server_ips = {"10.96.0.1"};
  tls::Pki pki = tls::EnsurePki(tmp.File("pki"), po);
  http::ServerOptions so;
  so.tls = http::TlsServerOptions{.cert_file = pki.apiserver.cert_file,
                                  .key_file = pki.apiserver.key_file,
                                  .client_ca_file = pki.ca.cert_file};
  so.require_client_cert = true;
  http::Server server(so, [](http::Request& req, http::Response& resp) {
    std::string groups;
    for (auto& g : req.client_groups) groups += g;
    resp.Set(200, "application/json",
             Json{{"user", req.client_cn}, {"groups", groups}, {"path", req.path}}.dump());
  });
  server.Start();
  KubeconfigEntry e{.cluster_name = "dev",
                    .server = "https://127.0.0.1:" + std::to_string(server.port()),
                    .ca_pem = pki.ca.pem.cert_pem,
                    .client_cert_pem = pki.admin.pem.cert_pem,
                    .client_key_pem = pki.admin.pem.key_pem};
  std::string path = tmp.File("config");
  MergeKubeconfig(path, e);
  auto r = RunCommand({kubectl, "--kubeconfig", path, "--cache-dir", tmp.File("cache"), "get",
                       "--raw", "/apis/kin.test/v1/things"});
  ASSERT_TRUE(r.status.success()) << r.err;
  EXPECT_EQ(Json::parse(r.out), (Json{{"user", "kubernetes-admin"},
                                      {"groups", "system:masters"},
                                      {"path", "/apis/kin.test/v1/things"}}));

  // A user the server cannot authenticate: a bearer token (no token
  // authentication here), or a certificate from another CA (Go does not
  // even send it: its issuer is not among the CAs the server asks for).
  Json config = ReadKubeconfig(path);
  config["users"][0]["user"] = {{"token", "not-a-valid-token"}};
  WriteFile(tmp.File("token"), ToYaml(config));
  tls::Pki other = tls::EnsurePki(tmp.File("other-pki"));
  e.client_cert_pem = other.admin.pem.cert_pem;
  e.client_key_pem = other.admin.pem.key_pem;
  MergeKubeconfig(tmp.File("foreign"), e);
  for (const char* name : {"token", "foreign"}) {
    r = RunCommand({kubectl, "--kubeconfig", tmp.File(name), "--cache-dir", tmp.File("cache"),
                    "get", "--raw", "/api"});
    EXPECT_FALSE(r.status.success()) << name;
    EXPECT_NE(r.err.find("Unauthorized"), std::string::npos) << name << ": " << r.err;
  }
  server.Stop();
}

}  // namespace
}  // namespace kin::cmd
