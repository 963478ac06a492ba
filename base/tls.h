// TLS for kin's API endpoint: the cluster PKI and the server side of TLS.
//
// The PKI is what kind (kubeadm) sets up, trimmed to what kin serves: a
// cluster CA, the API server's serving certificate (SANs 127.0.0.1,
// localhost and the caller's extras such as the kubernetes Service IP and
// names) and the admin's client certificate (CN=kubernetes-admin,
// O=system:masters: Kubernetes maps CN to the user and each O to a group).
// Keys are EC P-256: fast to generate (~1 ms) and accepted by Go (kubectl),
// curl and OpenSSL. Files are PEM; keys are PKCS#8 ("BEGIN PRIVATE KEY").
// Key files are created with mode 0600 from the first byte, certificates
// 0644, every file written atomically (temp file + rename).
//
// The server side (ServerContext, used by http::Server when
// ServerOptions::tls is set) behaves like kube-apiserver: it asks for a
// client certificate (listing the client CA) but never fails a handshake
// over it (Go's tls.RequestClientCert); a certificate that does not verify
// against the client CA simply leaves the connection unauthenticated, so
// the HTTP layer can answer 401 with a Status body kubectl understands.
// ALPN offers only http/1.1 (kubectl offers h2 first).
//
// Errors: kin::Error; OpenSSL failures carry OpenSSL's reason, and file
// errors name the file.
//
// Thread-safety: the free functions are thread-safe. A ServerContext is
// immutable after construction and shared by all connection threads. A
// connection from ServerContext::Accept allows one thread reading while
// another writes (as a plain socket does), e.g. an exec stream's pumps.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/fd.h"
#include "base/http_server.h"

typedef struct ssl_st SSL;

namespace kin::tls {

// A certificate and its private key, both PEM.
struct KeyPair {
  std::string cert_pem;
  std::string key_pem;
};

struct CertSpec {
  std::string common_name;
  std::vector<std::string> organizations;  // Kubernetes groups for client certs
  std::vector<std::string> dns_names;      // subjectAltName DNS entries
  std::vector<std::string> ip_addresses;   // subjectAltName IP entries (v4 or v6)
  bool server_auth = false;                // extendedKeyUsage serverAuth
  bool client_auth = false;                // extendedKeyUsage clientAuth
  int validity_days = 365;
};

// A new self-signed CA (basicConstraints CA:TRUE, keyCertSign).
KeyPair GenerateCa(const std::string& common_name, int validity_days = 3650);
// A new key and a leaf certificate for it, signed by `ca`. Throws Invalid
// naming an IP address or DNS name that is not one.
KeyPair IssueCertificate(const KeyPair& ca, const CertSpec& spec);

struct CertInfo {
  std::string common_name;
  std::vector<std::string> organizations;
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;  // as inet_ntop prints them
  bool is_ca = false;
  bool server_auth = false;  // usable for serverAuth (no EKU counts as any)
  bool client_auth = false;
  std::chrono::system_clock::time_point not_before;
  std::chrono::system_clock::time_point not_after;
};
// Throws BadRequest when `cert_pem` holds no certificate.
CertInfo InspectCertificate(const std::string& cert_pem);
// Empty when `cert_pem` chains to the CA in `ca_pem` and is valid now;
// otherwise OpenSSL's reason (e.g. "unable to get local issuer certificate").
std::string VerifyCertificate(const std::string& ca_pem, const std::string& cert_pem);
bool KeyMatchesCertificate(const std::string& cert_pem, const std::string& key_pem);

// kubernetes, kubernetes.default, kubernetes.default.svc,
// kubernetes.default.svc.<cluster_domain>: how pods name the API server.
std::vector<std::string> KubernetesServiceDnsNames(
    const std::string& cluster_domain = "cluster.local");

struct PkiOptions {
  std::string ca_common_name = "kubernetes";  // as kubeadm names its CA
  // The serving certificate always covers 127.0.0.1 and localhost; these
  // come on top (e.g. "10.96.0.1" and KubernetesServiceDnsNames()).
  std::vector<std::string> server_ips;
  std::vector<std::string> server_dns_names;
  std::string admin_common_name = "kubernetes-admin";
  std::vector<std::string> admin_groups = {"system:masters"};
  int ca_validity_days = 3650;
  int leaf_validity_days = 365;
};

struct PkiFile {
  std::string cert_file;
  std::string key_file;
  KeyPair pem;
};

struct Pki {
  std::string dir;
  PkiFile ca;                        // ca.crt, ca.key
  PkiFile apiserver;                 // apiserver.crt, apiserver.key (serving certificate)
  PkiFile admin;                     // admin.crt, admin.key (client certificate)
  std::vector<std::string> written;  // files this call (re)wrote
};

// Creates the PKI under `dir` (mode 0700 when created) where missing and
// loads it otherwise, so every call after the first returns the same CA and
// keys. A leaf is issued anew (by the same CA) when it is missing, is not
// signed by the CA, does not match its key, expires within 30 days, or no
// longer fits `opts` (a requested SAN, the admin's CN or groups). A CA with
// only one of its two files present is an error (Conflict, naming the
// missing file): replacing it would silently invalidate every kubeconfig.
// Concurrent callers on one directory are serialized by a lock file.
Pki EnsurePki(const std::string& dir, const PkiOptions& opts = {});

// Who a TLS connection's client proved to be.
struct PeerIdentity {
  bool verified = false;            // a client certificate verified against the client CA
  std::string common_name;          // of that certificate (empty unless verified)
  std::vector<std::string> groups;  // its O values (empty unless verified)
  std::string rejected_reason;      // why a presented certificate did not verify
};

// The server's TLS configuration: certificate, key, client CA, ALPN.
class ServerContext {
 public:
  // Loads the files; throws naming the file that cannot be used.
  explicit ServerContext(const http::TlsServerOptions& opts);
  ~ServerContext();
  ServerContext(const ServerContext&) = delete;
  ServerContext& operator=(const ServerContext&) = delete;

  // Runs the server handshake on `fd` (an accepted socket, still owned by
  // the caller, left non-blocking) within `timeout_ms`, giving up early when
  // `stopping` turns true or the socket is shut down. Returns the TLS
  // connection, or null with `error` set when the handshake fails. A client
  // speaking plain HTTP gets "400 Client sent an HTTP request to an HTTPS
  // server." as Go answers it.
  //
  // The returned Conn's fd() is for identification only: bytes on it are
  // TLS records, and data may wait inside the TLS session where poll()
  // cannot see it; use Conn::WaitReadable.
  std::unique_ptr<http::Conn> Accept(int fd, int timeout_ms, const std::atomic<bool>& stopping,
                                     PeerIdentity& peer, std::string& error) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A blocking http::Conn over a TLS session on a non-blocking socket: one
// mutex guards the SSL object, waits for the socket happen outside it, so a
// reader blocked on an idle stream never holds up a writer. Takes `ssl` (freed
// on destruction); `owned_fd`, when given, is closed after it.
std::unique_ptr<http::Conn> WrapTlsSession(SSL* ssl, int fd, UniqueFd owned_fd = UniqueFd());

// poll() one fd for `events`, retrying on EINTR; true when an event came.
bool PollFd(int fd, short events, int timeout_ms);

}  // namespace kin::tls
