#include "base/tls.h"

#include "base/file.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <mutex>

#include "base/error.h"
#include "base/fd.h"
#include "base/log.h"

namespace kin::tls {

namespace {

// ---- OpenSSL ownership and errors ----

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
  void operator()(X509_STORE* p) const { X509_STORE_free(p); }
  void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
  void operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
};
template <typename T>
using Ptr = std::unique_ptr<T, Free>;

// Drains this thread's OpenSSL error queue into one line.
std::string OpensslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

[[noreturn]] void ThrowOpenssl(const std::string& what) {
  throw Error::Internal(what + ": " + OpensslErrors());
}

void Check(int ok, const char* what) {
  if (ok != 1) ThrowOpenssl(what);
}

std::string BioToString(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, n);
}

Ptr<X509> ParseCert(const std::string& pem, const std::string& what) {
  ERR_clear_error();
  Ptr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Ptr<X509> x(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!x) throw Error::BadRequest(what + " holds no PEM certificate: " + OpensslErrors());
  return x;
}

Ptr<EVP_PKEY> ParseKey(const std::string& pem, const std::string& what) {
  ERR_clear_error();
  Ptr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Ptr<EVP_PKEY> k(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!k) throw Error::BadRequest(what + " holds no PEM private key: " + OpensslErrors());
  return k;
}

std::string CertPem(X509* x) {
  Ptr<BIO> bio(BIO_new(BIO_s_mem()));
  Check(PEM_write_bio_X509(bio.get(), x), "PEM_write_bio_X509");
  return BioToString(bio.get());
}

std::string KeyPem(EVP_PKEY* k) {
  Ptr<BIO> bio(BIO_new(BIO_s_mem()));
  Check(PEM_write_bio_PrivateKey(bio.get(), k, nullptr, nullptr, 0, nullptr, nullptr),
        "PEM_write_bio_PrivateKey");
  return BioToString(bio.get());
}

// ---- Certificate building ----

Ptr<EVP_PKEY> NewKey() {
  ERR_clear_error();
  Ptr<EVP_PKEY> k(EVP_EC_gen("P-256"));
  if (!k) ThrowOpenssl("generate EC P-256 key");
  return k;
}

void AddConfExtension(X509* x, X509V3_CTX* ctx, int nid, const char* value) {
  Ptr<X509_EXTENSION> ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value));
  if (!ext) ThrowOpenssl(std::string("certificate extension ") + OBJ_nid2sn(nid));
  Check(X509_add_ext(x, ext.get(), -1), "X509_add_ext");
}

// subjectAltName built entry by entry, so no name can smuggle in syntax of
// OpenSSL's config strings (commas, "IP:").
void AddSubjectAltNames(X509* x, const std::vector<std::string>& dns,
                        const std::vector<std::string>& ips) {
  if (dns.empty() && ips.empty()) return;
  Ptr<GENERAL_NAMES> names(GENERAL_NAMES_new());
  for (const std::string& d : dns) {
    bool ok = !d.empty() && d.size() <= 253;
    for (char ch : d) {
      ok = ok && (isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '.' || ch == '*');
    }
    if (!ok) throw Error::Invalid("certificate DNS name \"" + d + "\" is not a valid DNS name");
    GENERAL_NAME* gn = GENERAL_NAME_new();
    ASN1_IA5STRING* s = ASN1_IA5STRING_new();
    ASN1_STRING_set(s, d.data(), static_cast<int>(d.size()));
    GENERAL_NAME_set0_value(gn, GEN_DNS, s);
    sk_GENERAL_NAME_push(names.get(), gn);
  }
  for (const std::string& ip : ips) {
    unsigned char buf[16];
    int len = 0;
    if (::inet_pton(AF_INET, ip.c_str(), buf) == 1) {
      len = 4;
    } else if (::inet_pton(AF_INET6, ip.c_str(), buf) == 1) {
      len = 16;
    } else {
      throw Error::Invalid("certificate IP address \"" + ip + "\" is not an IP address");
    }
    GENERAL_NAME* gn = GENERAL_NAME_new();
    ASN1_OCTET_STRING* s = ASN1_OCTET_STRING_new();
    ASN1_OCTET_STRING_set(s, buf, len);
    GENERAL_NAME_set0_value(gn, GEN_IPADD, s);
    sk_GENERAL_NAME_push(names.get(), gn);
  }
  Check(X509_add1_ext_i2d(x, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT),
        "add subjectAltName");
}

// A certificate with everything but extensions and signature: version 3, a
// random 127-bit serial, validity from an hour ago (clock skew) for `days`.
Ptr<X509> NewCert(EVP_PKEY* key, const std::string& cn, const std::vector<std::string>& orgs,
                  int days) {
  if (days <= 0) throw Error::Invalid("certificate validity must be at least one day");
  Ptr<X509> x(X509_new());
  Check(X509_set_version(x.get(), X509_VERSION_3), "X509_set_version");
  Ptr<BIGNUM> serial(BN_new());
  Check(BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY), "BN_rand");
  if (BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(x.get())) == nullptr) {
    ThrowOpenssl("set serial number");
  }
  if (X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(x.get()), days, 0, nullptr) == nullptr) {
    ThrowOpenssl("set validity");
  }
  X509_NAME* name = X509_get_subject_name(x.get());
  for (const std::string& o : orgs) {
    Check(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>(o.c_str()), -1, -1, 0),
          "add subject O");
  }
  if (!cn.empty()) {
    Check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0),
          "add subject CN");
  }
  Check(X509_set_pubkey(x.get(), key), "X509_set_pubkey");
  return x;
}

std::string NameEntry(X509_NAME* name, int nid, int& pos) {
  pos = X509_NAME_get_index_by_NID(name, nid, pos);
  if (pos < 0) return "";
  ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, pos));
  unsigned char* utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, s);
  if (n < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), n);
  OPENSSL_free(utf8);
  return out;
}

void SubjectOf(X509* x, std::string& cn, std::vector<std::string>& orgs) {
  X509_NAME* name = X509_get_subject_name(x);
  int pos = -1;
  cn = NameEntry(name, NID_commonName, pos);
  pos = -1;
  while (true) {
    std::string o = NameEntry(name, NID_organizationName, pos);
    if (pos < 0) break;
    orgs.push_back(std::move(o));
  }
}

std::chrono::system_clock::time_point TimeOf(const ASN1_TIME* t) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return {};
  return std::chrono::system_clock::from_time_t(::timegm(&tm));
}

// ---- Files ----

std::string ReadWholeFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw ErrnoError(errno, "read " + path);
  std::string out;
  char buf[16384];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw ErrnoError(errno, "read " + path);
    if (n == 0) return out;
    out.append(buf, n);
  }
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// ---- The socket BIO ----
//
// OpenSSL's own socket BIO writes with write(2), which raises SIGPIPE when
// the peer is gone and would kill a process that did not ignore it (tests,
// embedders). This one sends with MSG_NOSIGNAL; the fd is not owned.

int BioFd(BIO* b) { return static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(b))); }

int BioWrite(BIO* b, const char* in, int n) {
  BIO_clear_retry_flags(b);
  ssize_t r;
  do {
    r = ::send(BioFd(b), in, n, MSG_NOSIGNAL);
  } while (r < 0 && errno == EINTR);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_write(b);
  return static_cast<int>(r);
}

int BioRead(BIO* b, char* out, int n) {
  BIO_clear_retry_flags(b);
  ssize_t r;
  do {
    r = ::recv(BioFd(b), out, n, 0);
  } while (r < 0 && errno == EINTR);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_read(b);
  return static_cast<int>(r);
}

long BioCtrl(BIO* b, int cmd, long, void* ptr) {
  switch (cmd) {
    case BIO_C_GET_FD:
      if (ptr != nullptr) *static_cast<int*>(ptr) = BioFd(b);
      return BioFd(b);
    case BIO_CTRL_FLUSH:
    case BIO_CTRL_DUP:
      return 1;
    default:
      return 0;
  }
}

int BioPuts(BIO* b, const char* s) { return BioWrite(b, s, static_cast<int>(std::strlen(s))); }

BIO_METHOD* SocketMethod() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                 "kin socket");
    BIO_meth_set_write(m, BioWrite);
    BIO_meth_set_read(m, BioRead);
    BIO_meth_set_puts(m, BioPuts);
    BIO_meth_set_ctrl(m, BioCtrl);
    return m;
  }();
  return method;
}

// poll() for `events` up to `timeout_ms` (-1: forever); false on error or
// timeout. Hang-ups count as ready: the next TLS call then reports them.
bool PollFdImpl(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  int r;
  do {
    r = ::poll(&p, 1, timeout_ms);
  } while (r < 0 && errno == EINTR);
  return r > 0 && (p.revents & POLLNVAL) == 0;
}

// A TLS session over a non-blocking socket, blocking to its callers. The
// mutex guards the SSL object (OpenSSL forbids concurrent calls on one);
// waiting for the socket happens outside it, so a reader blocked on an idle
// stream does not hold up a writer.
class TlsConn : public http::Conn {
 public:
  TlsConn(SSL* ssl, int fd, UniqueFd owned) : ssl_(ssl), fd_(fd), owned_(std::move(owned)) {}
  ~TlsConn() override {
    ERR_clear_error();
    // Best effort close_notify (never waits); not after a fatal error, as
    // OpenSSL requires.
    if (SSL_is_init_finished(ssl_) && !failed_) SSL_shutdown(ssl_);
    ERR_clear_error();
    SSL_free(ssl_);
  }

  long Read(char* buf, size_t n) override {
    while (true) {
      int err;
      {
        std::lock_guard lock(mu_);
        ERR_clear_error();
        size_t got = 0;
        if (SSL_read_ex(ssl_, buf, n, &got) == 1) return static_cast<long>(got);
        err = SSL_get_error(ssl_, 0);
        ERR_clear_error();
      }
      if (err == SSL_ERROR_ZERO_RETURN) return 0;
      if (!Wait(err)) return -1;
    }
  }

  bool WriteAll(std::string_view data) override {
    while (!data.empty()) {
      int err;
      {
        std::lock_guard lock(mu_);
        ERR_clear_error();
        size_t written = 0;
        if (SSL_write_ex(ssl_, data.data(), data.size(), &written) == 1) {
          data.remove_prefix(written);
          continue;
        }
        err = SSL_get_error(ssl_, 0);
        ERR_clear_error();
      }
      if (!Wait(err)) return false;
    }
    return true;
  }

  bool WaitReadable(int timeout_ms) override {
    {
      std::lock_guard lock(mu_);
      if (SSL_pending(ssl_) > 0 || SSL_has_pending(ssl_) == 1) return true;
    }
    return PollFdImpl(fd_, POLLIN | POLLRDHUP, timeout_ms);
  }

  bool PeerClosed() override {
    pollfd p{fd_, POLLRDHUP, 0};
    if (::poll(&p, 1, 0) <= 0) return false;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
  }

  int fd() const override { return fd_; }

 private:
  // Waits for what a TLS call asked for; false when the call failed for good.
  bool Wait(int err) {
    if (err == SSL_ERROR_WANT_READ) return PollFdImpl(fd_, POLLIN, -1);
    if (err == SSL_ERROR_WANT_WRITE) return PollFdImpl(fd_, POLLOUT, -1);
    failed_ = true;
    return false;
  }

  std::mutex mu_;
  std::atomic<bool> failed_{false};
  SSL* ssl_;
  int fd_;
  UniqueFd owned_;  // closed after the session is freed, when the connection owns its socket
};

int AlpnSelect(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void*) {
  static const unsigned char kHttp11[] = "\x08http/1.1";
  unsigned char* selected = nullptr;
  unsigned char selected_len = 0;
  if (SSL_select_next_proto(&selected, &selected_len, kHttp11, sizeof kHttp11 - 1, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;  // no ALPN then; the client may still speak HTTP/1.1
  }
  *out = selected;
  *outlen = selected_len;
  return SSL_TLSEXT_ERR_OK;
}

// Accepts the handshake whatever the client certificate: it is judged after
// the handshake, from SSL_get_verify_result (kube-apiserver's
// tls.RequestClientCert plus its x509 authenticator).
int AcceptAnyCertificate(int, X509_STORE_CTX*) { return 1; }

}  // namespace

// ---- Certificates ----

KeyPair GenerateCa(const std::string& common_name, int validity_days) {
  Ptr<EVP_PKEY> key = NewKey();
  Ptr<X509> x = NewCert(key.get(), common_name, {}, validity_days);
  Check(X509_set_issuer_name(x.get(), X509_get_subject_name(x.get())), "X509_set_issuer_name");
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x.get(), x.get(), nullptr, nullptr, 0);
  AddConfExtension(x.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE");
  AddConfExtension(x.get(), &ctx, NID_key_usage, "critical,digitalSignature,keyCertSign,cRLSign");
  AddConfExtension(x.get(), &ctx, NID_subject_key_identifier, "hash");
  if (X509_sign(x.get(), key.get(), EVP_sha256()) == 0) ThrowOpenssl("sign CA certificate");
  return KeyPair{CertPem(x.get()), KeyPem(key.get())};
}

KeyPair IssueCertificate(const KeyPair& ca, const CertSpec& spec) {
  Ptr<X509> ca_cert = ParseCert(ca.cert_pem, "CA certificate");
  Ptr<EVP_PKEY> ca_key = ParseKey(ca.key_pem, "CA key");
  Ptr<EVP_PKEY> key = NewKey();
  Ptr<X509> x = NewCert(key.get(), spec.common_name, spec.organizations, spec.validity_days);
  Check(X509_set_issuer_name(x.get(), X509_get_subject_name(ca_cert.get())),
        "X509_set_issuer_name");
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, ca_cert.get(), x.get(), nullptr, nullptr, 0);
  AddConfExtension(x.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE");
  AddConfExtension(x.get(), &ctx, NID_key_usage, "critical,digitalSignature");
  if (spec.server_auth || spec.client_auth) {
    const char* eku = spec.server_auth && spec.client_auth ? "serverAuth,clientAuth"
                      : spec.server_auth                   ? "serverAuth"
                                                           : "clientAuth";
    AddConfExtension(x.get(), &ctx, NID_ext_key_usage, eku);
  }
  AddConfExtension(x.get(), &ctx, NID_authority_key_identifier, "keyid:always");
  AddSubjectAltNames(x.get(), spec.dns_names, spec.ip_addresses);
  if (X509_sign(x.get(), ca_key.get(), EVP_sha256()) == 0) ThrowOpenssl("sign certificate");
  return KeyPair{CertPem(x.get()), KeyPem(key.get())};
}

CertInfo InspectCertificate(const std::string& cert_pem) {
  Ptr<X509> x = ParseCert(cert_pem, "certificate");
  CertInfo info;
  SubjectOf(x.get(), info.common_name, info.organizations);
  auto* names = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(x.get(), NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names, i);
    if (gn->type == GEN_DNS) {
      const ASN1_STRING* s = gn->d.dNSName;
      info.dns_names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                  ASN1_STRING_length(s));
    } else if (gn->type == GEN_IPADD) {
      const ASN1_STRING* s = gn->d.iPAddress;
      char buf[INET6_ADDRSTRLEN] = {};
      int len = ASN1_STRING_length(s);
      if (len == 4 || len == 16) {
        ::inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(s), buf, sizeof buf);
        info.ip_addresses.emplace_back(buf);
      }
    }
  }
  GENERAL_NAMES_free(names);
  info.is_ca = X509_check_ca(x.get()) > 0;
  uint32_t xku = X509_get_extended_key_usage(x.get());
  info.server_auth = (xku & XKU_SSL_SERVER) != 0;
  info.client_auth = (xku & XKU_SSL_CLIENT) != 0;
  info.not_before = TimeOf(X509_get0_notBefore(x.get()));
  info.not_after = TimeOf(X509_get0_notAfter(x.get()));
  return info;
}

std::string VerifyCertificate(const std::string& ca_pem, const std::string& cert_pem) {
  Ptr<X509> ca = ParseCert(ca_pem, "CA certificate");
  Ptr<X509> x = ParseCert(cert_pem, "certificate");
  Ptr<X509_STORE> store(X509_STORE_new());
  Check(X509_STORE_add_cert(store.get(), ca.get()), "X509_STORE_add_cert");
  Ptr<X509_STORE_CTX> ctx(X509_STORE_CTX_new());
  Check(X509_STORE_CTX_init(ctx.get(), store.get(), x.get(), nullptr), "X509_STORE_CTX_init");
  if (X509_verify_cert(ctx.get()) == 1) return "";
  ERR_clear_error();
  return X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
}

bool KeyMatchesCertificate(const std::string& cert_pem, const std::string& key_pem) {
  Ptr<X509> x = ParseCert(cert_pem, "certificate");
  Ptr<EVP_PKEY> k = ParseKey(key_pem, "key");
  bool ok = X509_check_private_key(x.get(), k.get()) == 1;
  ERR_clear_error();
  return ok;
}

std::vector<std::string> KubernetesServiceDnsNames(const std::string& cluster_domain) {
  return {"kubernetes", "kubernetes.default", "kubernetes.default.svc",
          "kubernetes.default.svc." + cluster_domain};
}

// ---- Files and the PKI ----

namespace {

constexpr auto kRenewBefore = std::chrono::hours(24 * 30);

// Reads a cert/key pair; false when neither file exists, throws when only
// one does or one is unreadable.
bool LoadPair(const std::string& cert_file, const std::string& key_file, KeyPair& out) {
  bool cert_exists = Exists(cert_file), key_exists = Exists(key_file);
  if (!cert_exists && !key_exists) return false;
  if (cert_exists != key_exists) {
    throw Error::Conflict((cert_exists ? key_file : cert_file) + " is missing but " +
                          (cert_exists ? cert_file : key_file) +
                          " exists; restore it or remove both");
  }
  out.cert_pem = ReadWholeFile(cert_file);
  out.key_pem = ReadWholeFile(key_file);
  return true;
}

bool Contains(const std::vector<std::string>& have, const std::vector<std::string>& want) {
  for (const std::string& w : want) {
    if (std::find(have.begin(), have.end(), w) == have.end()) return false;
  }
  return true;
}

// Why an existing leaf must be reissued, or empty when it is still good.
std::string LeafProblem(const KeyPair& ca, const KeyPair& leaf, const CertSpec& spec) {
  try {
    std::string why = VerifyCertificate(ca.cert_pem, leaf.cert_pem);
    if (!why.empty()) return why;
    if (!KeyMatchesCertificate(leaf.cert_pem, leaf.key_pem)) return "key does not match";
    CertInfo info = InspectCertificate(leaf.cert_pem);
    if (info.not_after < std::chrono::system_clock::now() + kRenewBefore) return "expires soon";
    if (info.common_name != spec.common_name) return "common name differs";
    if (info.organizations != spec.organizations) return "organizations differ";
    if (!Contains(info.dns_names, spec.dns_names) ||
        !Contains(info.ip_addresses, spec.ip_addresses))
      return "subject alternative names differ";
    if ((spec.server_auth && !info.server_auth) || (spec.client_auth && !info.client_auth))
      return "extended key usage differs";
    return "";
  } catch (const Error& e) {
    return e.message();
  }
}

}  // namespace

Pki EnsurePki(const std::string& dir, const PkiOptions& opts) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) {
    std::filesystem::create_directories(dir, ec);
    if (ec) throw ErrnoError(ec.value(), "create PKI directory " + dir);
    ::chmod(dir.c_str(), 0700);
  }
  std::string lock_path = dir + "/.lock";
  UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock) throw ErrnoError(errno, "open " + lock_path);
  while (::flock(lock.get(), LOCK_EX) != 0) {
    if (errno != EINTR) throw ErrnoError(errno, "lock " + lock_path);
  }

  Pki pki;
  pki.dir = dir;
  auto file = [&](PkiFile& f, const std::string& base) {
    f.cert_file = dir + "/" + base + ".crt";
    f.key_file = dir + "/" + base + ".key";
  };
  file(pki.ca, "ca");
  file(pki.apiserver, "apiserver");
  file(pki.admin, "admin");

  auto write = [&](PkiFile& f) {
    // Key first: a crash in between leaves a key without a certificate, which
    // the next call reports instead of pairing a new certificate with it.
    WriteFileAtomic(f.key_file, f.pem.key_pem, 0600);
    WriteFileAtomic(f.cert_file, f.pem.cert_pem, 0644);
    pki.written.push_back(f.key_file);
    pki.written.push_back(f.cert_file);
  };

  bool have_ca = false;
  try {
    have_ca = LoadPair(pki.ca.cert_file, pki.ca.key_file, pki.ca.pem);
  } catch (const Error& e) {
    if (e.code() == Code::kConflict) throw;
    throw Error::Conflict("the cluster CA in " + dir + " cannot be used: " + e.message());
  }
  if (have_ca) {
    std::string problem;
    try {
      if (!InspectCertificate(pki.ca.pem.cert_pem).is_ca) {
        problem = pki.ca.cert_file + " is not a CA certificate";
      } else if (!KeyMatchesCertificate(pki.ca.pem.cert_pem, pki.ca.pem.key_pem)) {
        problem = pki.ca.key_file + " is not the key of " + pki.ca.cert_file;
      }
    } catch (const Error& e) {
      problem = "the cluster CA in " + dir + " cannot be used: " + e.message();
    }
    // Never replaced behind the user's back: kubeconfigs trust this CA.
    if (!problem.empty()) throw Error::Conflict(problem);
  } else {
    pki.ca.pem = GenerateCa(opts.ca_common_name, opts.ca_validity_days);
    write(pki.ca);
  }

  auto ensure_leaf = [&](PkiFile& f, const CertSpec& spec) {
    bool present = false;
    try {
      present = LoadPair(f.cert_file, f.key_file, f.pem);
    } catch (const Error& e) {
      log::Info("pki: reissuing {}: {}", f.cert_file, e.message());
    }
    if (present) {
      std::string why = LeafProblem(pki.ca.pem, f.pem, spec);
      if (why.empty()) return;
      log::Info("pki: reissuing {}: {}", f.cert_file, why);
    }
    f.pem = IssueCertificate(pki.ca.pem, spec);
    write(f);
  };

  CertSpec server;
  server.common_name = "kube-apiserver";
  server.dns_names = {"localhost"};
  for (const auto& d : opts.server_dns_names) {
    if (!Contains(server.dns_names, {d})) server.dns_names.push_back(d);
  }
  server.ip_addresses = {"127.0.0.1"};
  for (const auto& ip : opts.server_ips) {
    if (!Contains(server.ip_addresses, {ip})) server.ip_addresses.push_back(ip);
  }
  server.server_auth = true;
  server.validity_days = opts.leaf_validity_days;
  ensure_leaf(pki.apiserver, server);

  CertSpec admin;
  admin.common_name = opts.admin_common_name;
  admin.organizations = opts.admin_groups;
  admin.client_auth = true;
  admin.validity_days = opts.leaf_validity_days;
  ensure_leaf(pki.admin, admin);
  return pki;
}

// ---- The server side ----

struct ServerContext::Impl {
  Ptr<SSL_CTX> ctx;
};

ServerContext::ServerContext(const http::TlsServerOptions& opts) : impl_(std::make_unique<Impl>()) {
  ERR_clear_error();
  impl_->ctx.reset(SSL_CTX_new(TLS_server_method()));
  SSL_CTX* ctx = impl_->ctx.get();
  if (ctx == nullptr) ThrowOpenssl("SSL_CTX_new");
  Check(SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION), "set minimum TLS version");
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_CTX_use_certificate_chain_file(ctx, opts.cert_file.c_str()) != 1) {
    throw Error::BadRequest("TLS certificate file " + opts.cert_file +
                            " cannot be used: " + OpensslErrors());
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, opts.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    throw Error::BadRequest("TLS key file " + opts.key_file +
                            " cannot be used: " + OpensslErrors());
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    throw Error::BadRequest("TLS key file " + opts.key_file + " does not match " + opts.cert_file +
                            ": " + OpensslErrors());
  }
  if (!opts.client_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, opts.client_ca_file.c_str(), nullptr) != 1) {
      throw Error::BadRequest("TLS client CA file " + opts.client_ca_file +
                              " cannot be used: " + OpensslErrors());
    }
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(opts.client_ca_file.c_str());
    if (names == nullptr) {
      throw Error::BadRequest("TLS client CA file " + opts.client_ca_file +
                              " holds no certificate: " + OpensslErrors());
    }
    SSL_CTX_set_client_CA_list(ctx, names);  // takes ownership
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, AcceptAnyCertificate);
    // Session resumption with client verification needs a session id
    // context; without it OpenSSL fails resumed handshakes.
    static const unsigned char kSid[] = "kin-apiserver";
    Check(SSL_CTX_set_session_id_context(ctx, kSid, sizeof kSid - 1),
          "SSL_CTX_set_session_id_context");
  }
  SSL_CTX_set_alpn_select_cb(ctx, AlpnSelect, nullptr);
}

ServerContext::~ServerContext() = default;

std::unique_ptr<http::Conn> ServerContext::Accept(int fd, int timeout_ms,
                                                  const std::atomic<bool>& stopping,
                                                  PeerIdentity& peer, std::string& error) const {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  auto remaining_ms = [&] {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    return static_cast<int>(std::max<long long>(0, left.count()));
  };
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    error = std::string("fcntl: ") + std::strerror(errno);
    return nullptr;
  }

  // A TLS ClientHello starts with record type 22; an HTTP request with a
  // method name. Tell plain-HTTP clients what went wrong, as Go does.
  if (!PollFdImpl(fd, POLLIN, remaining_ms())) {
    error = "no ClientHello within the handshake timeout";
    return nullptr;
  }
  unsigned char first = 0;
  if (::recv(fd, &first, 1, MSG_PEEK) == 1 && first >= 'A' && first <= 'Z') {
    static const char kAnswer[] =
        "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";
    ::send(fd, kAnswer, sizeof kAnswer - 1, MSG_NOSIGNAL);
    error = "client sent plain HTTP";
    return nullptr;
  }

  ERR_clear_error();
  SSL* ssl = SSL_new(impl_->ctx.get());
  if (ssl == nullptr) {
    error = "SSL_new: " + OpensslErrors();
    return nullptr;
  }
  BIO* bio = BIO_new(SocketMethod());
  if (bio == nullptr) {
    SSL_free(ssl);
    error = "BIO_new: " + OpensslErrors();
    return nullptr;
  }
  BIO_set_data(bio, reinterpret_cast<void*>(static_cast<intptr_t>(fd)));
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl, bio, bio);  // one reference, owned by ssl from here
  SSL_set_accept_state(ssl);
  auto conn = std::make_unique<TlsConn>(ssl, fd, UniqueFd());  // frees ssl on every path

  while (true) {
    ERR_clear_error();
    int r = SSL_do_handshake(ssl);
    if (r == 1) break;
    int err = SSL_get_error(ssl, r);
    if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
      error = err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0
                  ? std::string("connection closed during the handshake")
                  : OpensslErrors();
      return nullptr;
    }
    if (stopping) {
      error = "server stopping";
      return nullptr;
    }
    int left = remaining_ms();
    if (left == 0 || !PollFdImpl(fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, left)) {
      error = "handshake timed out";
      return nullptr;
    }
  }

  if (X509* cert = SSL_get0_peer_certificate(ssl)) {
    long result = SSL_get_verify_result(ssl);
    if (result == X509_V_OK) {
      peer.verified = true;
      SubjectOf(cert, peer.common_name, peer.groups);
    } else {
      peer.rejected_reason = X509_verify_cert_error_string(result);
    }
  }
  return conn;
}

std::unique_ptr<http::Conn> WrapTlsSession(SSL* ssl, int fd, UniqueFd owned_fd) {
  return std::make_unique<TlsConn>(ssl, fd, std::move(owned_fd));
}

bool PollFd(int fd, short events, int timeout_ms) { return PollFdImpl(fd, events, timeout_ms); }

}  // namespace kin::tls
