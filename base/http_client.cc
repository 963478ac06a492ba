#include "base/http_client.h"

#include <curl/curl.h>
#include <dlfcn.h>

#include <strings.h>
#include <sys/socket.h>

#include <cstdlib>

#include <mutex>
#include <type_traits>

#include "base/error.h"
#include "base/process.h"

namespace kin::http {

namespace {

// libcurl, loaded on first use rather than linked: it pulls in some thirty
// shared libraries (gnutls, krb5, ldap, ssh2, ...) that `kin serve`, the
// shim server and every pod would otherwise map and relocate at start,
// though only the CLI, tests and benches make HTTP requests.
struct CurlApi {
  CURL* (*easy_init)();
  CURLcode (*easy_setopt)(CURL*, CURLoption, ...);
  CURLcode (*easy_perform)(CURL*);
  CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...);
  void (*easy_cleanup)(CURL*);
  void (*easy_reset)(CURL*);
  const char* (*easy_strerror)(CURLcode);
  CURLcode (*global_init)(long);
  curl_slist* (*slist_append)(curl_slist*, const char*);
  void (*slist_free_all)(curl_slist*);
};

const CurlApi& Curl() {
  static const CurlApi api = [] {
    void* lib = ::dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      throw Error::Unavailable(std::string("load libcurl (package libcurl4): ") + ::dlerror());
    }
    CurlApi a{};
    auto bind = [&](auto& fn, const char* name) {
      void* sym = ::dlsym(lib, name);
      if (sym == nullptr) throw Error::Unavailable(std::string("libcurl lacks ") + name);
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(sym);
    };
    bind(a.easy_init, "curl_easy_init");
    bind(a.easy_setopt, "curl_easy_setopt");
    bind(a.easy_perform, "curl_easy_perform");
    bind(a.easy_getinfo, "curl_easy_getinfo");
    bind(a.easy_cleanup, "curl_easy_cleanup");
    bind(a.easy_reset, "curl_easy_reset");
    bind(a.easy_strerror, "curl_easy_strerror");
    bind(a.global_init, "curl_global_init");
    bind(a.slist_append, "curl_slist_append");
    bind(a.slist_free_all, "curl_slist_free_all");
    a.global_init(CURL_GLOBAL_ALL);
    return a;
  }();
  return api;
}

void GlobalInit() { Curl(); }

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* resp = static_cast<ClientResponse*>(user);
  std::string_view line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    resp->headers.clear();  // a new response (after 100 Continue or a redirect)
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    std::string key(line.substr(0, colon));
    std::string_view v = line.substr(colon + 1);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' '))
      v.remove_suffix(1);
    resp->headers.emplace(std::move(key), std::string(v));
  }
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* resp = static_cast<ClientResponse*>(user);
  if (resp->body.empty()) {
    // Reserve once for a large body (a list) instead of growing by doubling.
    std::string cl = resp->Header("Content-Length");
    if (!cl.empty()) resp->body.reserve(std::strtoull(cl.c_str(), nullptr, 10));
  }
  resp->body.append(data, size * n);
  return size * n;
}

}  // namespace

void StreamCancel::Cancel() {
  std::lock_guard<std::mutex> l(mu_);
  cancelled_ = true;
  if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);  // the transfer sees the end of its stream
}

bool StreamCancel::cancelled() const {
  std::lock_guard<std::mutex> l(mu_);
  return cancelled_;
}

bool RecordStreamSocket(StreamCancel& cancel, int fd) {
  std::lock_guard<std::mutex> l(cancel.mu_);
  cancel.fd_ = fd;
  return fd < 0 || !cancel.cancelled_;
}

namespace {

struct StreamCtx {
  const std::function<bool(std::string_view)>* fn;
  bool stopped = false;
  const std::function<bool()>* should_stop = nullptr;
  const std::function<void(const ClientResponse&)>* on_headers = nullptr;
  ClientResponse* head = nullptr;
  bool headers_done = false;  // on_headers has run for the current response
};

// OnHeader, plus the status from the status line and the on_headers hook at
// the blank line that ends the final (non-1xx) response's headers.
size_t OnStreamHeader(char* data, size_t size, size_t n, void* user) {
  auto* ctx = static_cast<StreamCtx*>(user);
  std::string_view line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    ctx->headers_done = false;
    size_t sp = line.find(' ');
    ctx->head->status =
        sp == std::string_view::npos ? 0 : std::atoi(std::string(line.substr(sp + 1, 3)).c_str());
  } else if ((line == "\r\n" || line == "\n") && ctx->head->status >= 200) {
    // Once: the blank line after chunked trailers comes here too.
    if (!ctx->headers_done && ctx->on_headers != nullptr && *ctx->on_headers) {
      (*ctx->on_headers)(*ctx->head);
    }
    ctx->headers_done = true;
    return size * n;
  }
  return OnHeader(data, size, n, ctx->head);
}

int OnStreamProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* ctx = static_cast<StreamCtx*>(user);
  if ((*ctx->should_stop)()) {
    ctx->stopped = true;
    return 1;  // aborts the transfer with CURLE_ABORTED_BY_CALLBACK
  }
  return 0;
}

// Records the stream's socket for StreamCancel (a cancelled one is refused).
int OnStreamSocket(void* user, curl_socket_t fd, curlsocktype) {
  auto* cancel = static_cast<StreamCancel*>(user);
  return RecordStreamSocket(*cancel, fd) ? CURL_SOCKOPT_OK : CURL_SOCKOPT_ERROR;
}

size_t OnStream(char* data, size_t size, size_t n, void* user) {
  auto* ctx = static_cast<StreamCtx*>(user);
  if (!(*ctx->fn)(std::string_view(data, size * n))) {
    ctx->stopped = true;
    return 0;  // aborts the transfer
  }
  return size * n;
}

}  // namespace

HttpClient::HttpClient(ClientOptions opts) : opts_(std::move(opts)) {
  GlobalInit();
  curl_ = Curl().easy_init();
  if (curl_ == nullptr) throw Error::Internal("curl_easy_init failed");
}

HttpClient::~HttpClient() {
  if (header_list_ != nullptr) Curl().slist_free_all(header_list_);
  ScopedSigpipeBlock no_sigpipe;  // the TLS close_notify to a peer that is gone
  Curl().easy_cleanup(static_cast<CURL*>(curl_));
}

void HttpClient::Prepare(const std::string& method, const std::string& url, const std::string& body,
                         const Headers& headers, long timeout_ms) {
  CURL* c = static_cast<CURL*>(curl_);
  Curl().easy_reset(c);
  Curl().easy_setopt(c, CURLOPT_URL, url.c_str());
  Curl().easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  Curl().easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
  Curl().easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
  Curl().easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, opts_.connect_timeout_ms);
  if (method == "HEAD") {
    Curl().easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (method != "GET") {
    Curl().easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  }
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    Curl().easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    Curl().easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  if (!opts_.ca_file.empty()) Curl().easy_setopt(c, CURLOPT_CAINFO, opts_.ca_file.c_str());
  if (!opts_.cert_file.empty()) Curl().easy_setopt(c, CURLOPT_SSLCERT, opts_.cert_file.c_str());
  if (!opts_.key_file.empty()) Curl().easy_setopt(c, CURLOPT_SSLKEY, opts_.key_file.c_str());
  if (header_list_ != nullptr) {
    Curl().slist_free_all(header_list_);
    header_list_ = nullptr;
  }
  // No "Expect: 100-continue" round trip for bodies: it costs a full RTT.
  header_list_ = Curl().slist_append(header_list_, "Expect:");
  bool has_ct = false;
  for (const auto& [k, v] : headers) {
    if (::strcasecmp(k.c_str(), "Content-Type") == 0) has_ct = true;
    header_list_ = Curl().slist_append(header_list_, (k + ": " + v).c_str());
  }
  if (!has_ct && !body.empty()) {
    header_list_ = Curl().slist_append(header_list_, "Content-Type: application/json");
  }
  Curl().easy_setopt(c, CURLOPT_HTTPHEADER, header_list_);
}

ClientResponse HttpClient::Do(const std::string& method, const std::string& path_and_query,
                              const std::string& body, const Headers& headers) {
  std::string url = opts_.base_url + path_and_query;
  Prepare(method, url, body, headers, opts_.timeout_ms);
  CURL* c = static_cast<CURL*>(curl_);
  ClientResponse resp;
  Curl().easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
  Curl().easy_setopt(c, CURLOPT_HEADERDATA, &resp);
  Curl().easy_setopt(c, CURLOPT_WRITEFUNCTION, OnBody);
  Curl().easy_setopt(c, CURLOPT_WRITEDATA, &resp);
  // A kept-alive connection the server closed must be an error curl retries
  // on, not the end of the process (see ScopedSigpipeBlock). Stream() does
  // not block it: its callbacks write to stdout, where SIGPIPE ends
  // `kin logs -f | head` as it should.
  CURLcode rc;
  {
    ScopedSigpipeBlock no_sigpipe;
    rc = Curl().easy_perform(c);
  }
  if (rc != CURLE_OK) {
    throw Error::Unavailable(method + " " + url + ": " + Curl().easy_strerror(rc));
  }
  long status = 0;
  Curl().easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  resp.status = static_cast<int>(status);
  return resp;
}

int HttpClient::Stream(const std::string& method, const std::string& path_and_query,
                       const std::function<bool(std::string_view)>& on_data, const Headers& headers,
                       ClientResponse* head, const std::function<bool()>& should_stop,
                       const std::function<void(const ClientResponse&)>& on_headers,
                       StreamCancel* cancel) {
  std::string url = opts_.base_url + path_and_query;
  Prepare(method, url, "", headers, 0);
  CURL* c = static_cast<CURL*>(curl_);
  ClientResponse local;
  ClientResponse* h = head != nullptr ? head : &local;
  StreamCtx ctx{&on_data};
  ctx.should_stop = &should_stop;
  ctx.on_headers = &on_headers;
  ctx.head = h;
  Curl().easy_setopt(c, CURLOPT_HEADERFUNCTION, OnStreamHeader);
  Curl().easy_setopt(c, CURLOPT_HEADERDATA, &ctx);
  Curl().easy_setopt(c, CURLOPT_WRITEFUNCTION, OnStream);
  Curl().easy_setopt(c, CURLOPT_WRITEDATA, &ctx);
  if (should_stop) {
    Curl().easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    Curl().easy_setopt(c, CURLOPT_XFERINFOFUNCTION, OnStreamProgress);
    Curl().easy_setopt(c, CURLOPT_XFERINFODATA, &ctx);
  }
  if (cancel != nullptr) {
    Curl().easy_setopt(c, CURLOPT_SOCKOPTFUNCTION, OnStreamSocket);
    Curl().easy_setopt(c, CURLOPT_SOCKOPTDATA, cancel);
  }
  CURLcode rc = Curl().easy_perform(c);
  if (cancel != nullptr) {
    Curl().easy_setopt(c, CURLOPT_SOCKOPTFUNCTION, nullptr);
    RecordStreamSocket(*cancel, -1);
  }
  bool stopped_by_us =
      (ctx.stopped && (rc == CURLE_WRITE_ERROR || rc == CURLE_ABORTED_BY_CALLBACK)) ||
      (cancel != nullptr && cancel->cancelled());
  if (rc != CURLE_OK && !stopped_by_us) {
    throw Error::Unavailable(method + " " + url + ": " + Curl().easy_strerror(rc));
  }
  long status = 0;
  Curl().easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  h->status = static_cast<int>(status);
  return h->status;
}

}  // namespace kin::http
