#include "apiserver/admission_webhook.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <thread>
#include <optional>
#include <cerrno>
#include <cstring>
#include <random>

#include "apiserver/patch.h"
#include "apiserver/registry.h"
#include "base/log.h"
#include "base/netns.h"
#include "base/process.h"
#include "base/strings.h"
#include "base/tls.h"
#include "client/selector.h"

namespace kin::apiserver {

namespace {

constexpr const char* kMutatingBucket = "mutatingwebhookconfigurations.admissionregistration.k8s.io";
constexpr const char* kValidatingBucket =
    "validatingwebhookconfigurations.admissionregistration.k8s.io";

thread_local AdmissionRequestScope* tls_scope = nullptr;

using Clock = std::chrono::steady_clock;

int RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() <= 0 ? 0 : static_cast<int>(left.count());
}

// Go's syscall error texts are strerror's, lower-cased.
std::string GoErrno(int err) {
  std::string s = std::strerror(err);
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

std::string OpenSslReason() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "unknown TLS error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

struct ParsedUrl {
  std::string host;  // without brackets
  std::string port;
  std::string target;  // path?query
};

ParsedUrl ParseHttpsUrl(const std::string& url) {
  ParsedUrl u;
  std::string rest = url.substr(url.find("://") == std::string::npos ? 0 : url.find("://") + 3);
  size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  u.target = slash == std::string::npos ? "/" : rest.substr(slash);
  if (size_t q = rest.find('?'); slash == std::string::npos && q != std::string::npos) {
    authority = rest.substr(0, q);
    u.target = "/" + rest.substr(q);
  }
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    u.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size() && authority[close + 1] == ':') u.port = authority.substr(close + 2);
  } else if (size_t colon = authority.rfind(':'); colon != std::string::npos) {
    u.host = authority.substr(0, colon);
    u.port = authority.substr(colon + 1);
  } else {
    u.host = authority;
  }
  if (u.port.empty()) u.port = "443";
  return u;
}

// Shuts the socket down at the deadline: a TLS read blocks inside the
// session (post-handshake messages make the socket readable with no data
// for the caller), so only this stops a server that never answers.
class Deadline {
 public:
  Deadline(int fd, Clock::time_point at) : thread_([this, fd, at] {
    std::unique_lock lock(mu_);
    if (!cv_.wait_until(lock, at, [this] { return done_; })) {
      expired_ = true;
      ::shutdown(fd, SHUT_RDWR);
    }
  }) {}
  ~Deadline() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  bool expired() {
    std::lock_guard lock(mu_);
    return expired_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false, expired_ = false;
  std::thread thread_;  // last: started once the rest is ready
};

struct SslCtxDeleter {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};

// The HTTPS transport: one connection per call (Connection: close), made
// in the call's network namespace when it names one.
class HttpsTransport : public WebhookTransport {
 public:
  WebhookReply Post(const WebhookCall& call) override {
    ScopedSigpipeBlock no_sigpipe;
    const Clock::time_point deadline = Clock::now() + call.timeout;
    const std::string prefix = "Post \"" + call.url + "\": ";
    ParsedUrl u = ParseHttpsUrl(call.url);
    std::string connect_host = u.host, connect_port = u.port;
    if (!call.connect_to.empty()) {
      size_t colon = call.connect_to.rfind(':');
      connect_host = call.connect_to.substr(0, colon);
      connect_port = call.connect_to.substr(colon + 1);
    }
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (int rc = ::getaddrinfo(connect_host.c_str(), connect_port.c_str(), &hints, &res); rc != 0) {
      throw Error::Unavailable(prefix + "dial tcp: lookup " + connect_host + ": " +
                               ::gai_strerror(rc));
    }
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addrs(res, &::freeaddrinfo);
    const std::string dial = "dial tcp " + connect_host + ":" + connect_port + ": ";
    UniqueFd fd;
    auto make = [&] {
      fd = UniqueFd(::socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                             res->ai_protocol));
    };
    if (call.netns.empty()) {
      make();
    } else {
      RunInNetns(Netns::Open(call.netns), make);
    }
    if (!fd.valid()) throw Error::Unavailable(prefix + dial + "socket: " + GoErrno(errno));
    if (::connect(fd.get(), res->ai_addr, res->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) throw Error::Unavailable(prefix + dial + "connect: " + GoErrno(errno));
      if (!tls::PollFd(fd.get(), POLLOUT, RemainingMs(deadline))) {
        throw Error::Timeout(prefix + "context deadline exceeded");
      }
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) throw Error::Unavailable(prefix + dial + "connect: " + GoErrno(err));
    }

    std::unique_ptr<SSL_CTX, SslCtxDeleter> ctx(SSL_CTX_new(TLS_client_method()));
    if (!ctx) throw Error::Internal(prefix + "tls: " + OpenSslReason());
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    if (call.ca_pem.empty()) {
      SSL_CTX_set_default_verify_paths(ctx.get());
    } else {
      X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());
      BIO* bio = BIO_new_mem_buf(call.ca_pem.data(), static_cast<int>(call.ca_pem.size()));
      int added = 0;
      while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
        if (X509_STORE_add_cert(store, cert) == 1) ++added;
        X509_free(cert);
      }
      BIO_free(bio);
      ERR_clear_error();
      if (added == 0) {
        throw Error::Unavailable(prefix + "tls: caBundle holds no PEM certificate");
      }
    }
    static const unsigned char kAlpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx.get(), kAlpn, sizeof kAlpn - 1);
    SSL* ssl = SSL_new(ctx.get());
    if (ssl == nullptr) throw Error::Internal(prefix + "tls: " + OpenSslReason());
    int sock = fd.get();
    std::unique_ptr<http::Conn> conn = tls::WrapTlsSession(ssl, sock, std::move(fd));
    Deadline deadline_guard(sock, deadline);
    const std::string timed_out = prefix + "context deadline exceeded";
    SSL_set_fd(ssl, sock);
    in6_addr ip6;
    in_addr ip4;
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    if (::inet_pton(AF_INET, u.host.c_str(), &ip4) == 1 ||
        ::inet_pton(AF_INET6, u.host.c_str(), &ip6) == 1) {
      X509_VERIFY_PARAM_set1_ip_asc(param, u.host.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl, u.host.c_str());
      X509_VERIFY_PARAM_set1_host(param, u.host.c_str(), 0);
    }
    for (;;) {
      ERR_clear_error();
      int r = SSL_connect(ssl);
      if (r == 1) break;
      int err = SSL_get_error(ssl, r);
      short events = err == SSL_ERROR_WANT_READ ? POLLIN : err == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
      if (events == 0) {
        if (deadline_guard.expired()) throw Error::Timeout(timed_out);
        long verify = SSL_get_verify_result(ssl);
        std::string why = verify != X509_V_OK
                              ? std::string("tls: failed to verify certificate: x509: ") +
                                    X509_verify_cert_error_string(verify)
                              : (err == SSL_ERROR_SYSCALL ? std::string("EOF") : OpenSslReason());
        throw Error::Unavailable(prefix + why);
      }
      if (!tls::PollFd(sock, events, RemainingMs(deadline))) {
        throw Error::Timeout(prefix + "context deadline exceeded");
      }
    }
    std::string host_header = u.port == "443" ? u.host : u.host + ":" + u.port;
    if (host_header.find(':') != std::string::npos && u.host.find(':') != std::string::npos) {
      host_header = "[" + u.host + "]:" + u.port;
    }
    std::string req = "POST " + u.target + " HTTP/1.1\r\nHost: " + host_header +
                      "\r\nUser-Agent: kube-apiserver-admission\r\n"
                      "Content-Type: application/json\r\nAccept: application/json, */*\r\n"
                      "Content-Length: " +
                      std::to_string(call.body.size()) + "\r\nConnection: close\r\n\r\n" +
                      call.body;
    if (!conn->WriteAll(req)) {
      if (deadline_guard.expired()) throw Error::Timeout(timed_out);
      throw Error::Unavailable(prefix + "write: broken pipe");
    }
    std::string in;
    char buf[16384];
    constexpr size_t kMax = 32 << 20;  // kube-apiserver caps webhook responses too
    for (;;) {
      size_t head_end = in.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        // Done when Content-Length is met; otherwise (chunked) at EOF: the
        // request asked the server to close.
        std::string head = Lower(in.substr(0, head_end));
        size_t cl = head.find("\r\ncontent-length:");
        if (cl != std::string::npos &&
            in.size() - head_end - 4 >= std::strtoul(head.c_str() + cl + 17, nullptr, 10)) {
          break;
        }
      }
      if (in.size() > kMax) throw Error::Unavailable(prefix + "response too large");
      if (!conn->WaitReadable(RemainingMs(deadline))) {
        throw Error::Timeout(prefix + "context deadline exceeded");
      }
      long n = conn->Read(buf, sizeof buf);
      if (deadline_guard.expired()) throw Error::Timeout(timed_out);
      if (n < 0) throw Error::Unavailable(prefix + "read: connection reset by peer");
      if (n == 0) break;
      in.append(buf, static_cast<size_t>(n));
    }
    return ParseResponse(in, prefix);
  }

 private:
  static WebhookReply ParseResponse(const std::string& in, const std::string& prefix) {
    size_t head_end = in.find("\r\n\r\n");
    if (in.rfind("HTTP/1.", 0) != 0 || head_end == std::string::npos) {
      throw Error::Unavailable(prefix + "malformed HTTP response");
    }
    WebhookReply reply;
    reply.status = std::atoi(in.c_str() + 9);
    std::string head = Lower(in.substr(0, head_end));
    std::string body = in.substr(head_end + 4);
    if (head.find("transfer-encoding: chunked") != std::string::npos) {
      std::string out;
      size_t pos = 0;
      for (;;) {
        size_t eol = body.find("\r\n", pos);
        if (eol == std::string::npos) throw Error::Unavailable(prefix + "malformed chunked body");
        size_t len = std::strtoul(body.c_str() + pos, nullptr, 16);
        if (len == 0) break;
        if (eol + 2 + len > body.size()) throw Error::Unavailable(prefix + "unexpected EOF");
        out.append(body, eol + 2, len);
        pos = eol + 2 + len + 2;
      }
      body = std::move(out);
    } else if (size_t cl = head.find("\r\ncontent-length:"); cl != std::string::npos) {
      size_t len = std::strtoul(head.c_str() + cl + 17, nullptr, 10);
      if (body.size() < len) throw Error::Unavailable(prefix + "unexpected EOF");
      body.resize(len);
    }
    reply.body = std::move(body);
    return reply;
  }
};

Json Labels(const Json& obj) {
  if (!obj.is_object()) return Json::object();
  const Json& m = obj.value("metadata", Json::object());
  return m.is_object() ? m.value("labels", Json::object()) : Json::object();
}

bool Has(const Json& list, const std::string& v) {
  if (!list.is_array()) return false;
  for (const auto& e : list) {
    if (e.is_string() && (e == "*" || e == v)) return true;
  }
  return false;
}

// generic.Matcher's rule check (admission/plugin/webhook/predicates/rules).
bool RuleMatches(const Json& rule, const AdmissionAttributes& a) {
  const ResourceInfo& r = *a.resource;
  if (!Has(rule.value("operations", Json::array()), a.operation)) return false;
  if (!Has(rule.value("apiGroups", Json::array()), r.group)) return false;
  if (!Has(rule.value("apiVersions", Json::array()), r.version)) return false;
  bool resource_ok = false;
  for (const auto& res : rule.value("resources", Json::array())) {
    if (!res.is_string()) continue;
    std::string s = res.get<std::string>();
    size_t slash = s.find('/');
    std::string rr = s.substr(0, slash);
    std::string sub = slash == std::string::npos ? "" : s.substr(slash + 1);
    if ((rr == "*" || rr == r.plural) && (sub == "*" || sub == a.subresource)) {
      resource_ok = true;
      break;
    }
  }
  if (!resource_ok) return false;
  const bool is_namespace = r.group.empty() && r.plural == "namespaces";
  std::string scope = rule.value("scope", "*");
  if (scope == "Namespaced") return !is_namespace && !a.ns.empty();
  if (scope == "Cluster") return is_namespace || a.ns.empty();
  return true;
}

// A Status as kube-apiserver's NewInternalError makes it.
Json InternalStatus(const std::string& reason) {
  return Json{{"kind", "Status"},
              {"apiVersion", "v1"},
              {"metadata", Json::object()},
              {"status", "Failure"},
              {"message", "Internal error occurred: " + reason},
              {"reason", "InternalError"},
              {"details", {{"causes", Json::array({{{"message", reason}}})}}},
              {"code", 500}};
}

}  // namespace

StatusError::StatusError(Json status)
    : Error(CodeFromHttpStatus(status.value("code", 500)), status.value("message", "")),
      status_(std::move(status)) {}

AdmissionRequestScope::AdmissionRequestScope(AdmissionUser user)
    : user_(std::move(user)), previous_(tls_scope) {
  tls_scope = this;
}
AdmissionRequestScope::~AdmissionRequestScope() { tls_scope = previous_; }
AdmissionRequestScope* AdmissionRequestScope::Current() { return tls_scope; }

AdmissionUser InProcessUser(const std::string& component) {
  const std::string suffix = "-controller";
  if (component.size() > suffix.size() &&
      component.compare(component.size() - suffix.size(), suffix.size(), suffix) == 0) {
    return {"system:serviceaccount:kube-system:" + component,
            {"system:serviceaccounts", "system:serviceaccounts:kube-system",
             "system:authenticated"}};
  }
  if (component == "default-scheduler") return {"system:kube-scheduler", {"system:authenticated"}};
  if (component == "kube-controller-manager") {
    return {"system:kube-controller-manager", {"system:authenticated"}};
  }
  return {};
}

bool WebhooksAdmit(const ResourceInfo& r) { return r.group != "admissionregistration.k8s.io"; }

namespace {

AdmissionAttributes WriteAttributes(const char* op, const char* options_kind,
                                    const ResourceInfo& r, const Json& obj,
                                    const WriteOptions& opts) {
  AdmissionAttributes a;
  a.operation = op;
  a.resource = &r;
  const Json& m = obj.value("metadata", Json::object());
  a.ns = r.namespaced ? m.value("namespace", "") : "";
  a.name = m.value("name", "");
  a.object = obj;
  a.dry_run = opts.dry_run;
  a.options = {{"kind", options_kind}, {"apiVersion", "meta.k8s.io/v1"}};
  if (opts.dry_run) a.options["dryRun"] = Json::array({"All"});
  if (!opts.field_manager.empty()) a.options["fieldManager"] = opts.field_manager;
  if (!opts.field_validation.empty()) a.options["fieldValidation"] = opts.field_validation;
  return a;
}

}  // namespace

AdmissionAttributes CreateAttributes(const ResourceInfo& r, const Json& obj,
                                     const WriteOptions& opts) {
  return WriteAttributes("CREATE", "CreateOptions", r, obj, opts);
}

AdmissionAttributes UpdateAttributes(const ResourceInfo& r, const std::string& subresource,
                                     const Json& obj, const Json& old, const WriteOptions& opts) {
  AdmissionAttributes a = WriteAttributes("UPDATE", "UpdateOptions", r, obj, opts);
  a.subresource = subresource;
  a.old_object = old;
  return a;
}

AdmissionAttributes DeleteAttributes(const ResourceInfo& r, const Json& old,
                                     const DeleteOptions& opts) {
  AdmissionAttributes a;
  a.operation = "DELETE";
  a.resource = &r;
  const Json& m = old.value("metadata", Json::object());
  a.ns = r.namespaced ? m.value("namespace", "") : "";
  a.name = m.value("name", "");
  a.old_object = old;
  a.dry_run = opts.dry_run;
  a.options = {{"kind", "DeleteOptions"}, {"apiVersion", "meta.k8s.io/v1"}};
  if (opts.dry_run) a.options["dryRun"] = Json::array({"All"});
  if (opts.grace_period_seconds) a.options["gracePeriodSeconds"] = *opts.grace_period_seconds;
  if (!opts.propagation_policy.empty()) a.options["propagationPolicy"] = opts.propagation_policy;
  return a;
}

void AdmitConnect(Registry& registry, const std::string& ns, const std::string& pod,
                  const std::string& subresource,
                  const std::multimap<std::string, std::string>& query) {
  AdmissionWebhooks& webhooks = registry.webhooks();
  if (!webhooks.Any()) return;
  static const char* const kKinds[][2] = {{"exec", "PodExecOptions"},
                                          {"attach", "PodAttachOptions"},
                                          {"portforward", "PodPortForwardOptions"}};
  AdmissionAttributes a;
  for (const auto& k : kKinds) {
    if (subresource == k[0]) a.kind = k[1];
  }
  if (a.kind.empty()) return;
  a.operation = "CONNECT";
  a.resource = FindResource("", "v1", "pods");
  a.subresource = subresource;
  a.ns = ns;
  a.name = pod;
  Json options = {{"kind", a.kind}, {"apiVersion", "v1"}};
  auto flag = [&](const char* key) {
    auto it = query.find(key);
    if (it != query.end()) options[key] = it->second == "true" || it->second == "1";
  };
  for (const char* key : {"stdin", "stdout", "stderr", "tty"}) flag(key);
  if (auto it = query.find("container"); it != query.end()) options["container"] = it->second;
  if (subresource == "exec") {
    Json command = Json::array();
    auto [b, e] = query.equal_range("command");
    for (auto it = b; it != e; ++it) command.push_back(it->second);
    options["command"] = command;
  } else if (subresource == "portforward") {
    Json ports = Json::array();
    auto [b, e] = query.equal_range("ports");
    for (auto it = b; it != e; ++it) ports.push_back(std::atoi(it->second.c_str()));
    if (!ports.empty()) options["ports"] = ports;
  }
  a.object = options;
  a.options = options;
  webhooks.Mutate(a);
  webhooks.Validate(a);
}

std::unique_ptr<WebhookTransport> NewHttpsWebhookTransport() {
  return std::make_unique<HttpsTransport>();
}

struct AdmissionWebhooks::Outcome {
  bool failed = false;  // the call failed: failurePolicy decides
  std::string failure;  // "failed to call webhook: ..." and the like
  Json response;        // AdmissionReview.response
};

AdmissionWebhooks::AdmissionWebhooks(const Store& store)
    : store_(store), transport_(NewHttpsWebhookTransport()) {}
AdmissionWebhooks::~AdmissionWebhooks() = default;

void AdmissionWebhooks::SetTransport(std::unique_ptr<WebhookTransport> t) {
  std::lock_guard lock(mu_);
  transport_ = std::move(t);
}
void AdmissionWebhooks::SetServiceNetns(std::string netns) {
  std::lock_guard lock(mu_);
  service_netns_ = std::move(netns);
}

bool AdmissionWebhooks::Any() const {
  for (const char* b : {kMutatingBucket, kValidatingBucket}) {
    if (!store_.List(b, "", nullptr, 1).items.empty()) return true;
  }
  return false;
}

bool AdmissionWebhooks::Matches(const Json& hook, const AdmissionAttributes& a) const {
  bool rule_ok = false;
  for (const auto& rule : hook.value("rules", Json::array())) {
    if (rule.is_object() && RuleMatches(rule, a)) {
      rule_ok = true;
      break;
    }
  }
  if (!rule_ok) return false;
  const ResourceInfo& r = *a.resource;
  // namespaceSelector: a Namespace is judged by its own labels; other
  // cluster-scoped objects always match.
  LabelSelector ns_sel = LabelSelector::FromJson(hook.value("namespaceSelector", Json::object()),
                                                 "namespaceSelector");
  if (!ns_sel.empty()) {
    if (r.group.empty() && r.plural == "namespaces") {
      if (!ns_sel.Matches(Labels(a.object.is_null() ? a.old_object : a.object))) return false;
    } else if (r.namespaced) {
      Json labels = Json::object();
      if (auto rec = store_.Get("namespaces", "", a.ns)) labels = Labels(rec->Parse());
      if (!ns_sel.Matches(labels)) return false;
    }
  }
  // objectSelector: either the new or the old object matches.
  LabelSelector obj_sel =
      LabelSelector::FromJson(hook.value("objectSelector", Json::object()), "objectSelector");
  if (!obj_sel.empty()) {
    bool ok = (a.object.is_object() && obj_sel.Matches(Labels(a.object))) ||
              (a.old_object.is_object() && obj_sel.Matches(Labels(a.old_object)));
    if (!ok) return false;
  }
  return true;
}

WebhookCall AdmissionWebhooks::Target(const Json& hook, std::string& error) const {
  WebhookCall call;
  const Json& cc = hook.value("clientConfig", Json::object());
  if (cc.contains("caBundle") && cc["caBundle"].is_string()) {
    call.ca_pem = Base64Decode(cc["caBundle"].get<std::string>()).value_or("");
  }
  int64_t timeout = hook.value("timeoutSeconds", int64_t{10});
  call.timeout = std::chrono::seconds(timeout);
  const std::string query = "?timeout=" + std::to_string(timeout) + "s";
  if (cc.contains("url") && cc["url"].is_string()) {
    call.url = cc["url"].get<std::string>() + query;
    return call;
  }
  const Json& svc = cc.value("service", Json::object());
  const std::string ns = svc.value("namespace", ""), name = svc.value("name", "");
  const int64_t port = svc.value("port", int64_t{443});
  call.url = "https://" + name + "." + ns + ".svc:" + std::to_string(port) + svc.value("path", "") +
             query;
  {
    std::lock_guard lock(mu_);
    call.netns = service_netns_;
  }
  // kube-apiserver's endpoint routing: a ready address of the Service's
  // Endpoints, on the port named as the Service's port.
  auto srec = store_.Get("services", ns, name);
  if (!srec) {
    error = "service \"" + name + "\" not found";
    return call;
  }
  Json service = srec->Parse();
  std::optional<Json> svc_port;
  for (const auto& p : service["spec"].value("ports", Json::array())) {
    if (p.is_object() && p.value("port", int64_t{0}) == port) svc_port = p;
  }
  if (!svc_port) {
    error = "no service port " + std::to_string(port) + " found for service \"" + name + "\"";
    return call;
  }
  const std::string port_name = svc_port->value("name", "");
  std::vector<std::string> candidates;
  if (auto erec = store_.Get("endpoints", ns, name)) {
    for (const auto& subset : erec->Parse().value("subsets", Json::array())) {
      int64_t target = 0;
      for (const auto& p : subset.value("ports", Json::array())) {
        if (p.value("name", "") == port_name) target = p.value("port", int64_t{0});
      }
      if (target == 0) continue;
      for (const auto& addr : subset.value("addresses", Json::array())) {
        std::string ip = addr.value("ip", "");
        if (!ip.empty()) candidates.push_back(ip + ":" + std::to_string(target));
      }
    }
  }
  if (candidates.empty()) {
    error = "no endpoints available for service \"" + name + "\"";
    return call;
  }
  thread_local std::mt19937 rng{std::random_device{}()};
  call.connect_to = candidates[rng() % candidates.size()];
  return call;
}

AdmissionWebhooks::Outcome AdmissionWebhooks::Call(const Json& hook, const AdmissionAttributes& a,
                                                   const Json& object, bool mutating) {
  Outcome out;
  const ResourceInfo& r = *a.resource;
  std::string error;
  WebhookCall call = Target(hook, error);
  if (!error.empty()) {
    out.failed = true;
    out.failure = "failed to call webhook: Post \"" + call.url + "\": " + error;
    return out;
  }
  const std::string uid = NewUid();
  Json kind = {{"group", r.group}, {"version", r.version},
               {"kind", a.kind.empty() ? r.kind : a.kind}};
  Json resource = {{"group", r.group}, {"version", r.version}, {"resource", r.plural}};
  Json request = {{"uid", uid},
                  {"kind", kind},
                  {"resource", resource},
                  {"requestKind", kind},
                  {"requestResource", resource},
                  {"name", a.name},
                  {"operation", a.operation},
                  {"userInfo", Json::object()},
                  {"object", object},
                  {"oldObject", a.old_object},
                  {"dryRun", a.dry_run},
                  {"options", a.options}};
  if (!a.subresource.empty()) {
    request["subResource"] = a.subresource;
    request["requestSubResource"] = a.subresource;
  }
  if (!a.ns.empty()) request["namespace"] = a.ns;
  if (AdmissionRequestScope* scope = AdmissionRequestScope::Current()) {
    Json user = {{"username", scope->user().username}};
    if (!scope->user().groups.empty()) user["groups"] = scope->user().groups;
    request["userInfo"] = user;
  }
  Json review = {{"kind", "AdmissionReview"},
                 {"apiVersion", "admission.k8s.io/v1"},
                 {"request", request}};
  call.body = review.dump();
  std::shared_ptr<WebhookTransport> transport;
  {
    std::lock_guard lock(mu_);
    transport = transport_;
  }
  WebhookReply reply;
  try {
    reply = transport->Post(call);
  } catch (const Error& e) {
    out.failed = true;
    out.failure = "failed to call webhook: " + e.message();
    return out;
  }
  if (reply.status < 200 || reply.status > 299) {
    out.failed = true;
    out.failure = "failed to call webhook: the server responded with the status code " +
                  std::to_string(reply.status) + " but did not return more information";
    return out;
  }
  Json body = Json::parse(reply.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    out.failed = true;
    out.failure = "failed to call webhook: the response body is not an AdmissionReview";
    return out;
  }
  std::string got_gvk = body.value("apiVersion", "") + ", Kind=" + body.value("kind", "");
  if (body.value("apiVersion", "") != "admission.k8s.io/v1" ||
      body.value("kind", "") != "AdmissionReview") {
    out.failed = true;
    out.failure =
        "received invalid webhook response: expected webhook response of admission.k8s.io/v1, "
        "Kind=AdmissionReview, got " +
        got_gvk;
    return out;
  }
  const Json& resp = body.value("response", Json());
  if (!resp.is_object()) {
    out.failed = true;
    out.failure = "received invalid webhook response: webhook response was absent";
    return out;
  }
  if (resp.value("uid", "") != uid) {
    out.failed = true;
    out.failure = "received invalid webhook response: expected response.uid=\"" + uid +
                  "\", got \"" + resp.value("uid", "") + "\"";
    return out;
  }
  bool has_patch = resp.contains("patch") && resp["patch"].is_string() &&
                   !resp["patch"].get<std::string>().empty();
  if (has_patch) {
    std::string patch_type = resp.value("patchType", "");
    std::string bad;
    if (!mutating) {
      bad = "validating webhook may not return response.patch";
    } else if (patch_type.empty()) {
      bad = "webhook returned response.patch but not response.patchType";
    } else if (patch_type != "JSONPatch") {
      bad = "webhook returned invalid response.patchType of \"" + patch_type + "\"";
    }
    if (!bad.empty()) {
      out.failed = true;
      out.failure = "received invalid webhook response: " + bad;
      return out;
    }
  }
  if (AdmissionRequestScope* scope = AdmissionRequestScope::Current()) {
    for (const auto& w : resp.value("warnings", Json::array())) {
      if (w.is_string()) scope->AddWarning(w.get<std::string>());
    }
  }
  out.response = resp;
  return out;
}

namespace {

struct Hook {
  std::string config;
  Json spec;
};

std::vector<Hook> Hooks(const Store& store, const char* bucket) {
  std::vector<Hook> out;
  // The store lists by name: kube-apiserver sorts configurations by name too.
  for (const Record& rec : store.List(bucket, "", nullptr).items) {
    Json c = rec.Parse();
    for (const auto& h : c.value("webhooks", Json::array())) {
      if (h.is_object()) out.push_back({rec.name, h});
    }
  }
  return out;
}

[[noreturn]] void Deny(const std::string& hook_name, const Json& response) {
  Json result = response.value("status", Json::object());
  if (!result.is_object()) result = Json::object();
  const std::string denied = "admission webhook \"" + hook_name + "\" denied the request";
  Json status = {{"kind", "Status"}, {"apiVersion", "v1"}, {"metadata", Json::object()}};
  status["status"] = "Failure";
  int64_t code = result.value("code", int64_t{0});
  if (code < 400) code = 400;
  std::string message = result.value("message", "");
  std::string reason = result.value("reason", "");
  if (!message.empty()) {
    status["message"] = denied + ": " + message;
  } else if (!reason.empty()) {
    status["message"] = denied + ": " + reason;
  } else {
    status["message"] = denied + " without explanation";
  }
  if (!reason.empty()) status["reason"] = reason;
  if (result.contains("details") && result["details"].is_object()) {
    status["details"] = result["details"];
  }
  status["code"] = code;
  throw StatusError(status);
}

}  // namespace

Json AdmissionWebhooks::Mutate(const AdmissionAttributes& a) {
  std::vector<Hook> hooks = Hooks(store_, kMutatingBucket);
  if (hooks.empty()) return a.object;
  AdmissionAttributes cur = a;
  // For reinvocationPolicy IfNeeded: the object as each such webhook left it.
  std::vector<std::pair<size_t, Json>> reinvocable;
  auto run = [&](size_t i) -> bool {
    const Json& hook = hooks[i].spec;
    const std::string name = hook.value("name", "");
    if (!Matches(hook, cur)) return false;
    std::string side_effects = hook.value("sideEffects", "");
    if (cur.dry_run && side_effects != "None" && side_effects != "NoneOnDryRun") {
      throw Error::BadRequest("admission webhook \"" + name + "\" does not support dry run");
    }
    Outcome o = Call(hook, cur, cur.object, true);
    if (o.failed) {
      if (hook.value("failurePolicy", "Fail") == "Ignore") {
        // As kube-apiserver logs it: otherwise an ignored failure leaves no trace.
        log::Warn("Failed calling webhook, failing open {}: failed calling webhook \"{}\": {}",
                  name, name, o.failure);
        return true;
      }
      throw StatusError(InternalStatus("failed calling webhook \"" + name + "\": " + o.failure));
    }
    if (!o.response.value("allowed", false)) Deny(name, o.response);
    if (o.response.contains("patch") && o.response["patch"].is_string() &&
        !o.response["patch"].get<std::string>().empty()) {
      auto raw = Base64Decode(o.response["patch"].get<std::string>());
      Json ops = raw ? Json::parse(*raw, nullptr, false) : Json();
      if (ops.is_discarded() || !ops.is_array()) {
        throw StatusError(InternalStatus("failed calling webhook \"" + name +
                                         "\": received invalid webhook response: the patch is "
                                         "not a JSON patch"));
      }
      Json patched;
      try {
        patched = ApplyJsonPatch(cur.object, ops);
      } catch (const Error& e) {
        throw StatusError(InternalStatus(e.message()));
      }
      cur.object = std::move(patched);
    }
    return true;
  };
  for (size_t i = 0; i < hooks.size(); ++i) {
    if (run(i) && hooks[i].spec.value("reinvocationPolicy", "Never") == "IfNeeded") {
      reinvocable.emplace_back(i, cur.object);
    }
  }
  // Once more for those whose output a later webhook changed.
  for (const auto& [i, after] : reinvocable) {
    if (cur.object != after) run(i);
  }
  return cur.object;
}

void AdmissionWebhooks::Validate(const AdmissionAttributes& a) {
  for (const Hook& h : Hooks(store_, kValidatingBucket)) {
    const std::string name = h.spec.value("name", "");
    if (!Matches(h.spec, a)) continue;
    std::string side_effects = h.spec.value("sideEffects", "");
    if (a.dry_run && side_effects != "None" && side_effects != "NoneOnDryRun") {
      throw Error::BadRequest("admission webhook \"" + name + "\" does not support dry run");
    }
    Outcome o = Call(h.spec, a, a.object, false);
    if (o.failed) {
      if (h.spec.value("failurePolicy", "Fail") == "Ignore") {
        log::Warn("Failed calling webhook, failing open {}: failed calling webhook \"{}\": {}",
                  name, name, o.failure);
        continue;
      }
      throw StatusError(InternalStatus("failed calling webhook \"" + name + "\": " + o.failure));
    }
    if (!o.response.value("allowed", false)) Deny(name, o.response);
  }
}

}  // namespace kin::apiserver
