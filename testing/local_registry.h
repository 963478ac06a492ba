// A Docker registry (Debian's docker-registry) on loopback for tests that
// pull images, and a small image to push into it (skopeo): header-only,
// for tests that link kin_runtime (it uses Sha256Digest).
//
//   testing::TempDir work;
//   std::string layout = testing::WriteImageLayout(work);  // an OCI layout, tag "1"
//   testing::LocalRegistry reg;                    // plain HTTP; ("u", "p") for Basic auth
//   reg.Push(layout, "test/x:1");                  // 127.0.0.1:PORT/test/x:1
//
// Thread-safety: one test thread.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/process.h"
#include "base/tls.h"
#include "base/yaml.h"
#include "runtime/registry_client.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin::testing {

// A port nothing listens on now (bound to 0 and released).
inline int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) < 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) < 0) {
    throw ErrnoError(errno, "bind a free port");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

// A docker-registry on 127.0.0.1:<free port>, its storage in a temp dir;
// plain HTTP, or HTTPS with `tls` (a certificate for 127.0.0.1 from a CA
// of its own: ca_file()); Basic auth (htpasswd -B) when `user` is given.
// Stopped (by its PID) when this dies.
class LocalRegistry {
 public:
  explicit LocalRegistry(const std::string& user = "", const std::string& password = "",
                         bool tls = false)
      : tls_(tls) {
    port_ = FreePort();
    std::string tls_config;
    if (tls) {
      tls::KeyPair ca = tls::GenerateCa("kin-test-registry-ca");
      tls::CertSpec spec;
      spec.common_name = "127.0.0.1";
      spec.ip_addresses = {"127.0.0.1"};
      spec.server_auth = true;
      tls::KeyPair leaf = tls::IssueCertificate(ca, spec);
      WriteFile(dir_.File("ca.crt"), ca.cert_pem);
      WriteFile(dir_.File("tls.crt"), leaf.cert_pem);
      WriteFile(dir_.File("tls.key"), leaf.key_pem);
      tls_config = "  tls:\n    certificate: " + dir_.File("tls.crt") +
                   "\n    key: " + dir_.File("tls.key") + "\n";
    }
    std::string auth;
    if (!user.empty()) {
      CommandResult h = RunCommand({"htpasswd", "-Bbn", user, password});
      if (!h.status.success()) throw Error::Internal("htpasswd: " + h.err);
      WriteFile(dir_.File("htpasswd"), h.out);
      auth = "auth:\n  htpasswd:\n    realm: kin-test\n    path: " + dir_.File("htpasswd") + "\n";
    }
    WriteFile(dir_.File("config.yml"),
              "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
              "    rootdirectory: " +
                  dir_.File("storage") + "\nhttp:\n  addr: 127.0.0.1:" + std::to_string(port_) +
                  "\n" + tls_config + auth);
    SpawnOptions o;
    o.argv = {"docker-registry", "serve", dir_.File("config.yml")};
    o.stdout_file = dir_.File("registry.log");
    o.stderr_to_stdout = true;
    o.stdin_mode = SpawnOptions::Stdio::kNull;
    proc_ = ChildProcess::Spawn(o);
    bool up = Eventually(
        [&] {
          if (!proc_.running()) return true;
          CommandResult r =
              RunCommand({"curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", url() + "/v2/"},
                         std::chrono::seconds(5));
          return r.out == "200" || r.out == "401";
        },
        std::chrono::seconds(20));
    if (!up || !proc_.running()) {
      throw Error::Unavailable("docker-registry did not start: " +
                               ReadFile(dir_.File("registry.log")));
    }
  }
  ~LocalRegistry() {
    if (proc_.running()) proc_.Stop(std::chrono::seconds(5));
  }
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string url() const { return (tls_ ? "https://" : "http://") + host(); }
  std::string ca_file() const { return dir_.File("ca.crt"); }
  std::string Log() const { return ReadFile(dir_.File("registry.log")); }

  // skopeo copy of the OCI layout `layout` (tag "1") to <host>/<repo>.
  void Push(const std::string& layout, const std::string& repo, const std::string& creds = "") {
    std::vector<std::string> argv = {"skopeo", "--insecure-policy", "copy", "-q",
                                     "--dest-tls-verify=false"};
    if (!creds.empty()) {
      argv.push_back("--dest-creds");
      argv.push_back(creds);
    }
    argv.push_back("oci:" + layout + ":1");
    argv.push_back("docker://" + host() + "/" + repo);
    CommandResult r = RunCommand(argv, std::chrono::seconds(60));
    if (!r.status.success()) throw Error::Internal("skopeo copy: " + r.err + r.out + Log());
  }

 private:
  TempDir dir_;
  bool tls_ = false;
  int port_ = 0;
  ChildProcess proc_;
};

// An OCI image layout of one uncompressed layer: the host's static
// busybox as /bin/busybox and /bin/sh. The image prints a line and sleeps.
inline std::string WriteImageLayout(const TempDir& dir) {
  std::string rootfs = dir.File("rootfs");
  std::filesystem::create_directories(rootfs + "/bin");
  std::filesystem::copy_file("/bin/busybox", rootfs + "/bin/busybox");
  std::filesystem::create_symlink("busybox", rootfs + "/bin/sh");
  std::filesystem::create_symlink("busybox", rootfs + "/bin/sleep");
  std::filesystem::create_directories(rootfs + "/tmp");
  CommandResult t = RunCommand({"tar", "-C", rootfs, "-cf", dir.File("layer.tar"), "."});
  if (!t.status.success()) throw Error::Internal("tar: " + t.err);
  std::string layer = ReadFile(dir.File("layer.tar"));
  std::string layer_digest = Sha256Digest(layer);
  std::string config =
      Json{
          {"architecture", "amd64"},
          {"os", "linux"},
          {"config",
           {{"Cmd", {"/bin/sh", "-c", "echo pulled-ok; exec sleep 3600"}}, {"Env", {"PATH=/bin"}}}},
          {"rootfs", {{"type", "layers"}, {"diff_ids", {layer_digest}}}}}
          .dump();
  std::string manifest = Json{{"schemaVersion", 2},
                              {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                              {"config",
                               {{"mediaType", "application/vnd.oci.image.config.v1+json"},
                                {"digest", Sha256Digest(config)},
                                {"size", config.size()}}},
                              {"layers",
                               {{{"mediaType", "application/vnd.oci.image.layer.v1.tar"},
                                 {"digest", layer_digest},
                                 {"size", layer.size()}}}}}
                             .dump();
  std::string layout = dir.File("layout");
  std::filesystem::create_directories(layout + "/blobs/sha256");
  for (const auto& blob : {layer, config, manifest}) {
    WriteFile(layout + "/blobs/sha256/" + Sha256Digest(blob).substr(7), blob);
  }
  WriteFile(layout + "/oci-layout", R"({"imageLayoutVersion": "1.0.0"})");
  WriteFile(layout + "/index.json",
            Json{{"schemaVersion", 2},
                 {"manifests",
                  {{{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                    {"digest", Sha256Digest(manifest)},
                    {"size", manifest.size()},
                    {"annotations", {{"org.opencontainers.image.ref.name", "1"}}}}}}}
                .dump());
  return layout;
}

}  // namespace kin::testing
