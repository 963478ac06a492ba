// HTTP client on libcurl, for the CLI, the tests and the benchmarks.
//
// One HttpClient holds one curl handle, so consecutive requests reuse the
// kept-alive connection. TLS with a CA and a client certificate is set up
// from ClientOptions. Stream() delivers a chunked response (a watch, logs -f)
// piece by piece until the callback returns false or the server ends it.
//
// Errors: transport failures throw kin::Error (Unavailable, naming the URL);
// HTTP error statuses are returned, not thrown.
//
// Thread-safety: an HttpClient is used by one thread at a time.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "base/http_server.h"  // Headers

struct curl_slist;

namespace kin::http {

struct ClientOptions {
  std::string base_url;   // e.g. "http://127.0.0.1:6443"
  std::string ca_file;    // TLS: the CA that signed the server's certificate
  std::string cert_file;  // TLS: client certificate and key
  std::string key_file;
  long timeout_ms = 30000;  // whole request; 0 = none (watches)
  long connect_timeout_ms = 5000;
};

struct ClientResponse {
  int status = 0;
  Headers headers;
  std::string body;
  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

class StreamCancel;
// Internal to HttpClient::Stream: the stream's socket (-1: none); false
// when the stream was cancelled already.
bool RecordStreamSocket(StreamCancel& cancel, int fd);

// Ends a Stream() from another thread at once, by shutting its socket
// down (the progress callback behind `should_stop` runs only about once a
// second on an idle stream). Thread-safe; one stream at a time.
class StreamCancel {
 public:
  void Cancel();
  bool cancelled() const;

 private:
  friend bool RecordStreamSocket(StreamCancel& cancel, int fd);
  mutable std::mutex mu_;
  int fd_ = -1;  // the stream's socket while it runs
  bool cancelled_ = false;
};

class HttpClient {
 public:
  explicit HttpClient(ClientOptions opts);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  ClientResponse Do(const std::string& method, const std::string& path_and_query,
                    const std::string& body = "", const Headers& headers = {});
  ClientResponse Get(const std::string& path, const Headers& headers = {}) {
    return Do("GET", path, "", headers);
  }
  // Streams the response body; `on_data` returns false to stop early.
  // Returns the status (headers are in `head` when given).
  //
  // `should_stop`, when set, is asked from libcurl's progress callback: as
  // data arrives and about once a second while the stream is idle. Returning
  // true ends the transfer as if `on_data` had returned false, so another
  // thread can end a stream on which nothing arrives (an idle watch) within
  // about a second. `on_headers`, when set, runs once the status line and the
  // headers of the final response have arrived, before any of the body; its
  // argument has `status` and `headers` set. `cancel`, when given, ends the
  // stream at once when cancelled (before or during it), as a stop does.
  int Stream(const std::string& method, const std::string& path_and_query,
             const std::function<bool(std::string_view)>& on_data, const Headers& headers = {},
             ClientResponse* head = nullptr, const std::function<bool()>& should_stop = {},
             const std::function<void(const ClientResponse&)>& on_headers = {},
             StreamCancel* cancel = nullptr);

  const ClientOptions& options() const { return opts_; }

 private:
  void Prepare(const std::string& method, const std::string& url, const std::string& body,
               const Headers& headers, long timeout_ms);
  ClientOptions opts_;
  void* curl_ = nullptr;
  ::curl_slist* header_list_ = nullptr;
};

}  // namespace kin::http
