#include "client/rest_client.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <optional>
#include <thread>
#include <utility>

#include "base/log.h"
#include "base/version.h"

namespace kin {

namespace {

// Idle connections kept for reuse; more concurrent callers get a fresh one
// that is closed afterwards.
constexpr size_t kMaxIdleConnections = 16;
// Events a watch buffers before it stops reading (TCP then holds the server).
constexpr size_t kMaxQueuedEvents = 4096;
// How much of a refused watch's body is kept for the error.
constexpr size_t kMaxErrorBody = 1 << 20;
constexpr size_t kMaxMessageBody = 4096;

const http::Headers& BaseHeaders() {
  static const http::Headers h = {{"Accept", "application/json"},
                                  {"User-Agent", std::string("kin/") + kVersion}};
  return h;
}

void AddParam(std::string& q, const char* key, const std::string& value) {
  q += q.empty() ? "?" : "&";
  q += key;
  q += "=";
  q += http::UrlEncode(value);
}

std::string StringField(const Json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string Trimmed(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

bool IsStatus(const Json& j) { return j.is_object() && StringField(j, "kind") == "Status"; }

std::string Segment(const std::string& s) { return http::UrlEncode(s); }

std::string ObjectPath(const ResourceInfo& r, const std::string& ns, const std::string& name,
                       const std::string& subresource = "") {
  if (name.empty()) throw Error::BadRequest("resource name may not be empty");
  std::string p = r.Path(Segment(ns)) + "/" + Segment(name);
  if (!subresource.empty()) p += "/" + subresource;
  return p;
}

// For a namespaced resource, "" falls back to the object's namespace.
std::string NamespaceFor(const ResourceInfo& r, const std::string& ns, const Json& obj) {
  if (!r.namespaced || !ns.empty()) return ns;
  if (obj.is_object() && obj.contains("metadata") && obj["metadata"].is_object()) {
    return StringField(obj["metadata"], "namespace");
  }
  return "";
}

Json MakeStatus(int code, const std::string& reason, const std::string& message) {
  return Json{{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", Json::object()},
              {"status", "Failure"}, {"message", message}, {"reason", reason},
              {"code", code}};
}

// A watch over one streaming GET, read on a thread of its own.
class RestWatch : public Watch {
 public:
  RestWatch(http::ClientOptions opts, std::string path)
      : opts_(std::move(opts)), path_(std::move(path)) {
    opts_.timeout_ms = 0;
  }
  ~RestWatch() override { Stop(); }

  // Starts the stream and waits for its response headers; throws the error
  // when the server refuses the watch or cannot be reached.
  void Start(long header_timeout_ms) {
    thread_ = std::thread([this] { Run(); });
    std::unique_lock lock(mu_);
    auto ready = [this] { return accepted_ || finished_; };
    if (header_timeout_ms > 0) {
      if (!cv_.wait_for(lock, std::chrono::milliseconds(header_timeout_ms), ready)) {
        lock.unlock();
        Stop();
        throw Error::Timeout("GET " + opts_.base_url + path_ + ": no response within " +
                             std::to_string(header_timeout_ms) + " ms");
      }
    } else {
      cv_.wait(lock, ready);
    }
    if (!accepted_ && start_error_) {
      Error e = *start_error_;
      lock.unlock();
      Stop();
      throw e;
    }
  }

  bool Next(WatchEvent& event, std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [this] { return !queue_.empty() || finished_ || stopped_; });
    if (stopped_ || queue_.empty()) return false;
    event = std::move(queue_.front());
    queue_.pop_front();
    space_cv_.notify_one();
    return true;
  }

  bool ended() const override {
    std::lock_guard lock(mu_);
    return stopped_ || (finished_ && queue_.empty());
  }

  void Stop() override {
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
      stop_flag_ = true;
      queue_.clear();
    }
    cancel_.Cancel();  // now, not at libcurl's next progress call (up to a second)
    cv_.notify_all();
    space_cv_.notify_all();
    std::lock_guard join(join_mu_);
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Run() {
    std::optional<Error> error;
    try {
      http::HttpClient client(opts_);
      client.Stream(
          "GET", path_, [this](std::string_view d) { return OnData(d); }, BaseHeaders(), nullptr,
          [this] { return stop_flag_.load(); },
          [this](const http::ClientResponse& head) { OnHeaders(head.status); }, &cancel_);
    } catch (const Error& e) {
      error = e;
    } catch (const std::exception& e) {
      error = Error::Internal(e.what());
    }
    if (error && accepted_) log::Debug("watch {}: {}", path_, error->message());
    if (!error && !over_ && !stop_flag_ && status_ >= 200 && status_ < 300) {
      decoder_.Finish([this](WatchEvent&& ev) { return Push(std::move(ev)); });
    }
    std::lock_guard lock(mu_);
    if (!accepted_) {
      if (error) {
        start_error_ = *error;
      } else if (status_ != 0) {
        start_error_ = ErrorFromResponse(status_, error_body_);
      } else {
        start_error_ = Error::Unavailable("GET " + opts_.base_url + path_ + ": no response");
      }
    }
    finished_ = true;
    cv_.notify_all();
  }

  void OnHeaders(int status) {
    status_ = status;
    if (status < 200 || status >= 300) return;  // the body is the error; read it first
    std::lock_guard lock(mu_);
    accepted_ = true;
    cv_.notify_all();
  }

  bool OnData(std::string_view data) {
    if (stop_flag_) return false;
    if (status_ < 200 || status_ >= 300) {
      if (error_body_.size() < kMaxErrorBody) error_body_.append(data);
      return true;
    }
    return decoder_.Feed(data, [this](WatchEvent&& ev) { return Push(std::move(ev)); }) &&
           !stop_flag_;
  }

  // Queues one event; false when the watch is over (ERROR event or Stop).
  bool Push(WatchEvent&& ev) {
    bool last = ev.type == "ERROR";
    if (last) over_ = true;
    std::unique_lock lock(mu_);
    space_cv_.wait(lock, [this] { return queue_.size() < kMaxQueuedEvents || stopped_; });
    if (stopped_) return false;
    queue_.push_back(std::move(ev));
    cv_.notify_all();
    return !last;
  }

  http::ClientOptions opts_;
  const std::string path_;
  std::thread thread_;
  std::mutex join_mu_;  // serializes joins of thread_

  mutable std::mutex mu_;
  std::condition_variable cv_;        // events, acceptance, the end
  std::condition_variable space_cv_;  // room in queue_, or stopped
  std::deque<WatchEvent> queue_;
  bool accepted_ = false;  // 2xx headers arrived
  bool finished_ = false;  // the stream thread is done
  bool stopped_ = false;
  std::optional<Error> start_error_;
  std::atomic<bool> stop_flag_{false};  // read by the stream thread without mu_
  http::StreamCancel cancel_;

  // Stream thread only.
  int status_ = 0;
  WatchDecoder decoder_;
  std::string error_body_;
  bool over_ = false;  // an ERROR event was queued: nothing after it counts
};

}  // namespace

bool WatchDecoder::Feed(std::string_view data, const Emit& emit) {
  buf_.append(data);
  size_t begin = 0;
  size_t nl;
  bool more = true;
  while (more && (nl = buf_.find('\n', std::max(begin, scanned_))) != std::string::npos) {
    more = EmitLine(std::string_view(buf_).substr(begin, nl - begin), emit);
    begin = nl + 1;
  }
  buf_.erase(0, begin);
  scanned_ = more ? buf_.size() : 0;
  return more;
}

bool WatchDecoder::Finish(const Emit& emit) {
  std::string rest = std::move(buf_);
  buf_.clear();
  scanned_ = 0;
  return EmitLine(rest, emit);
}

bool WatchDecoder::EmitLine(std::string_view raw, const Emit& emit) {
  std::string line = Trimmed(raw);
  if (line.empty()) return true;
  WatchEvent ev;
  Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_object() && j.contains("type") && j["type"].is_string()) {
    ev.type = j["type"].get<std::string>();
    ev.object = j.contains("object") ? std::move(j["object"]) : Json();
  } else {
    std::string shown = line.size() > 200 ? line.substr(0, 200) + "..." : line;
    ev.type = "ERROR";
    ev.object = MakeStatus(500, "InternalError", "unable to decode watch event: " + shown);
  }
  return emit(std::move(ev));
}

std::string ListQuery(const ListOptions& opts, bool watch) {
  std::string q;
  if (!opts.label_selector.empty()) AddParam(q, "labelSelector", opts.label_selector);
  if (!opts.field_selector.empty()) AddParam(q, "fieldSelector", opts.field_selector);
  if (opts.limit > 0) AddParam(q, "limit", std::to_string(opts.limit));
  if (!opts.continue_token.empty()) AddParam(q, "continue", opts.continue_token);
  if (!opts.resource_version.empty()) AddParam(q, "resourceVersion", opts.resource_version);
  if (opts.timeout_seconds > 0) AddParam(q, "timeoutSeconds", std::to_string(opts.timeout_seconds));
  if (opts.allow_bookmarks) AddParam(q, "allowWatchBookmarks", "true");
  if (watch) AddParam(q, "watch", "true");
  return q;
}

std::string WriteQuery(const WriteOptions& opts) {
  std::string q;
  if (!opts.field_manager.empty()) AddParam(q, "fieldManager", opts.field_manager);
  if (opts.force) AddParam(q, "force", "true");
  if (!opts.field_validation.empty()) AddParam(q, "fieldValidation", opts.field_validation);
  if (opts.dry_run) AddParam(q, "dryRun", "All");
  return q;
}

Json DeleteOptionsBody(const DeleteOptions& opts) {
  Json body = {{"kind", "DeleteOptions"}, {"apiVersion", "v1"}};
  if (opts.grace_period_seconds) body["gracePeriodSeconds"] = *opts.grace_period_seconds;
  if (!opts.propagation_policy.empty()) body["propagationPolicy"] = opts.propagation_policy;
  if (!opts.precondition_uid.empty()) body["preconditions"]["uid"] = opts.precondition_uid;
  if (!opts.precondition_resource_version.empty()) {
    body["preconditions"]["resourceVersion"] = opts.precondition_resource_version;
  }
  return body;
}

Error ErrorFromStatus(const Json& status, int http_status) {
  if (!status.is_object()) {
    return Error(CodeFromHttpStatus(http_status), "HTTP " + std::to_string(http_status));
  }
  int code = http_status;
  if (auto it = status.find("code"); it != status.end() && it->is_number_integer()) {
    code = it->get<int>();
  }
  std::string reason = StringField(status, "reason");
  Code c = CodeFromReason(reason).value_or(CodeFromHttpStatus(code));
  std::string message = StringField(status, "message");
  if (message.empty()) {
    message = !reason.empty() ? reason : std::string(http::StatusText(code));
  }
  Error e(c, message);
  if (auto d = status.find("details"); d != status.end() && d->is_object()) {
    e.WithDetails(StringField(*d, "kind"), StringField(*d, "name"), StringField(*d, "group"));
    if (auto causes = d->find("causes"); causes != d->end() && causes->is_array()) {
      for (const auto& cause : *causes) {
        if (!cause.is_object()) continue;
        e.WithCause({StringField(cause, "reason"), StringField(cause, "message"),
                     StringField(cause, "field")});
      }
    }
  }
  return e;
}

Error ErrorFromResponse(int http_status, const std::string& body) {
  Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (IsStatus(j)) return ErrorFromStatus(j, http_status);
  std::string text = Trimmed(body);
  if (text.size() > kMaxMessageBody) text = text.substr(0, kMaxMessageBody) + "...";
  std::string message =
      "HTTP " + std::to_string(http_status) + " " + std::string(http::StatusText(http_status));
  if (!text.empty()) message += ": " + text;
  return Error(CodeFromHttpStatus(http_status), message);
}

RestClient::RestClient(http::ClientOptions opts) : opts_(std::move(opts)) {}

RestClient::~RestClient() = default;

std::unique_ptr<http::HttpClient> RestClient::Acquire() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
  }
  return std::make_unique<http::HttpClient>(opts_);
}

void RestClient::Release(std::unique_ptr<http::HttpClient> c) {
  std::lock_guard lock(mu_);
  if (idle_.size() < kMaxIdleConnections) idle_.push_back(std::move(c));
}

Json RestClient::Request(const std::string& method, const std::string& path_and_query,
                         const Json& body, const std::string& content_type) {
  http::Headers headers = BaseHeaders();
  std::string payload;
  if (!body.is_null()) {
    payload = body.dump();
    headers.emplace("Content-Type", content_type.empty() ? "application/json" : content_type);
  }
  auto client = Acquire();
  // A handle whose transfer failed is dropped rather than reused.
  http::ClientResponse resp = client->Do(method, path_and_query, payload, headers);
  Release(std::move(client));
  if (resp.status < 200 || resp.status >= 300) throw ErrorFromResponse(resp.status, resp.body);
  if (Trimmed(resp.body).empty()) return nullptr;
  Json out = Json::parse(resp.body, nullptr, /*allow_exceptions=*/false);
  if (out.is_discarded()) {
    std::string shown = resp.body.size() > 200 ? resp.body.substr(0, 200) + "..." : resp.body;
    throw Error::Internal(method + " " + opts_.base_url + path_and_query +
                          ": the server sent a body that is not JSON: " + shown);
  }
  return out;
}

Json RestClient::Get(const ResourceInfo& r, const std::string& ns, const std::string& name) {
  return Request("GET", ObjectPath(r, ns, name));
}

Json RestClient::List(const ResourceInfo& r, const std::string& ns, const ListOptions& opts) {
  return Request("GET", r.Path(Segment(ns)) + ListQuery(opts, false));
}

Json RestClient::Create(const ResourceInfo& r, const std::string& ns, const Json& obj,
                        const WriteOptions& opts) {
  return Request("POST", r.Path(Segment(NamespaceFor(r, ns, obj))) + WriteQuery(opts), obj);
}

Json RestClient::Update(const ResourceInfo& r, const std::string& ns, const Json& obj,
                        const std::string& subresource, const WriteOptions& opts) {
  std::string name;
  if (obj.is_object() && obj.contains("metadata") && obj["metadata"].is_object()) {
    name = StringField(obj["metadata"], "name");
  }
  if (name.empty()) throw Error::BadRequest("metadata.name: Required value: name is required");
  return Request(
      "PUT", ObjectPath(r, NamespaceFor(r, ns, obj), name, subresource) + WriteQuery(opts), obj);
}

Json RestClient::Patch(const ResourceInfo& r, const std::string& ns, const std::string& name,
                       PatchType type, const Json& patch, const std::string& subresource,
                       const WriteOptions& opts) {
  return Request("PATCH", ObjectPath(r, ns, name, subresource) + WriteQuery(opts), patch,
                 PatchContentType(type));
}

Json RestClient::Delete(const ResourceInfo& r, const std::string& ns, const std::string& name,
                        const DeleteOptions& opts) {
  return Request("DELETE", ObjectPath(r, ns, name), DeleteOptionsBody(opts));
}

std::unique_ptr<Watch> RestClient::StartWatch(const ResourceInfo& r, const std::string& ns,
                                              const ListOptions& opts) {
  auto w = std::make_unique<RestWatch>(opts_, r.Path(Segment(ns)) + ListQuery(opts, true));
  w->Start(opts_.timeout_ms);
  return w;
}

Json RestClient::CreateSubresource(const ResourceInfo& r, const std::string& ns,
                                   const std::string& name, const std::string& subresource,
                                   const Json& body) {
  return Request("POST", ObjectPath(r, ns, name, subresource), body);
}

}  // namespace kin
