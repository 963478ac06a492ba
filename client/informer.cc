#include "client/informer.h"

#include <algorithm>

#include "base/error.h"
#include "base/log.h"

namespace kin {

namespace {

// The longest a watch waits in Next() before looking at stopping_ again.
// Stop() also stops the watch, so this only bounds a missed wake-up.
constexpr std::chrono::seconds kNextWait(5);
constexpr std::chrono::milliseconds kFirstDelay(100);
constexpr std::chrono::milliseconds kMaxDelay(10000);
// A watch that ends sooner than this without an event counts as a failure,
// so a server that keeps closing watches at once is not hammered.
constexpr std::chrono::seconds kProductiveWatch(1);

std::string StringAt(const Json& obj, const char* a, const char* b) {
  if (!obj.is_object()) return "";
  auto it = obj.find(a);
  if (it == obj.end() || !it->is_object()) return "";
  auto jt = it->find(b);
  return jt != it->end() && jt->is_string() ? jt->get<std::string>() : "";
}

std::string Key(const std::string& ns, const std::string& name) {
  return ns.empty() ? name : ns + "/" + name;
}

std::string KeyOf(const Json& obj) {
  return Key(StringAt(obj, "metadata", "namespace"), StringAt(obj, "metadata", "name"));
}

// The delay before retry number `n` (1-based): the first retry is immediate.
std::chrono::milliseconds RetryDelay(int n) {
  if (n <= 1) return std::chrono::milliseconds(0);
  auto d = kFirstDelay * (1LL << std::min(n - 2, 10));
  return std::min<std::chrono::milliseconds>(d, kMaxDelay);
}

}  // namespace

Informer::Informer(Client& client, const ResourceInfo& resource, InformerOptions opts,
                   InformerHandlers handlers)
    : client_(client),
      resource_(resource),
      opts_(std::move(opts)),
      handlers_(std::move(handlers)),
      name_(resource.group_resource() + (opts_.ns.empty() ? "" : " in " + opts_.ns)) {}

Informer::~Informer() { Stop(); }

void Informer::Start() {
  std::lock_guard lock(thread_mu_);
  {
    std::lock_guard l(mu_);
    if (stopping_) return;
  }
  if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
}

void Informer::Stop() {
  bool on_own_thread = run_id_.load() == std::this_thread::get_id();
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  {
    std::lock_guard lock(watch_mu_);
    if (watch_ != nullptr) watch_->Stop();
  }
  // A handler stopping its own informer: the thread ends after the handler
  // returns, and whoever destroys the informer joins it.
  if (on_own_thread) return;
  std::lock_guard lock(thread_mu_);
  if (thread_.joinable()) thread_.join();
}

bool Informer::stopping() const {
  std::lock_guard lock(mu_);
  return stopping_;
}

bool Informer::Sleep(std::chrono::milliseconds d) {
  std::unique_lock lock(mu_);
  if (d.count() > 0) cv_.wait_for(lock, d, [this] { return stopping_; });
  return !stopping_;
}

std::optional<Json> Informer::Get(const std::string& ns, const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = cache_.find(Key(resource_.namespaced ? ns : "", name));
  if (it == cache_.end()) return std::nullopt;
  return it->second;
}

std::vector<Json> Informer::List() const {
  std::lock_guard lock(mu_);
  std::vector<Json> out;
  out.reserve(cache_.size());
  for (const auto& [key, obj] : cache_) out.push_back(obj);
  return out;
}

bool Informer::HasSynced() const {
  std::lock_guard lock(mu_);
  return synced_;
}

bool Informer::WaitForSync(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [this] { return synced_ || stopping_; });
  return synced_;
}

void Informer::Run() {
  run_id_ = std::this_thread::get_id();
  int failures = 0;
  while (!stopping()) {
    if (!Sleep(RetryDelay(failures))) return;
    std::string rv;
    if (!ListAndReplace(rv)) {
      ++failures;
      continue;
    }
    if (stopping()) return;
    failures = WatchFrom(rv) == WatchEnd::kProductive ? 0 : failures + 1;
  }
}

bool Informer::ListAndReplace(std::string& resource_version) {
  Json list;
  try {
    ListOptions lo;
    lo.label_selector = opts_.label_selector;
    lo.field_selector = opts_.field_selector;
    list = client_.List(resource_, opts_.ns, lo);
  } catch (const std::exception& e) {
    log::Warn("informer {}: list: {}", name_, e.what());
    return false;
  }
  resource_version = StringAt(list, "metadata", "resourceVersion");

  std::map<std::string, Json> fresh;
  std::vector<std::string> order;  // the list's order, for the handlers
  if (auto it = list.find("items"); it != list.end() && it->is_array()) {
    for (auto& item : *it) {
      std::string key = KeyOf(item);
      if (fresh.emplace(key, item).second) order.push_back(key);
    }
  }
  std::vector<Change> changes;
  bool first;
  {
    std::lock_guard lock(mu_);
    for (const auto& key : order) {
      const Json& now = fresh[key];
      auto old = cache_.find(key);
      if (old == cache_.end()) {
        changes.push_back({Change::kAdd, nullptr, now});
      } else if (old->second != now) {
        changes.push_back({Change::kUpdate, old->second, now});
      }
    }
    for (const auto& [key, obj] : cache_) {
      if (!fresh.contains(key)) changes.push_back({Change::kDelete, obj, nullptr});
    }
    cache_ = std::move(fresh);
    first = !synced_;
  }
  for (const auto& c : changes) {
    if (stopping()) return true;
    Emit(c);
  }
  if (first) {
    {
      std::lock_guard lock(mu_);
      synced_ = true;
    }
    cv_.notify_all();
  }
  return true;
}

Informer::WatchEnd Informer::WatchFrom(const std::string& resource_version) {
  auto started = std::chrono::steady_clock::now();
  ListOptions lo;
  lo.label_selector = opts_.label_selector;
  lo.field_selector = opts_.field_selector;
  lo.resource_version = resource_version;
  lo.allow_bookmarks = true;
  std::unique_ptr<Watch> watch;
  try {
    watch = client_.StartWatch(resource_, opts_.ns, lo);
  } catch (const Error& e) {
    if (e.code() != Code::kGone) log::Warn("informer {}: watch: {}", name_, e.message());
    return WatchEnd::kUnproductive;
  } catch (const std::exception& e) {
    log::Warn("informer {}: watch: {}", name_, e.what());
    return WatchEnd::kUnproductive;
  }
  {
    std::lock_guard lock(watch_mu_);
    watch_ = watch.get();
  }
  // Stop() may have run before watch_ was set.
  if (stopping()) watch->Stop();

  int events = 0;
  WatchEvent ev;
  while (!stopping()) {
    try {
      if (!watch->Next(ev, kNextWait)) {
        if (watch->ended()) break;
        continue;
      }
    } catch (const Error& e) {
      if (e.code() != Code::kGone) log::Warn("informer {}: watch: {}", name_, e.message());
      break;
    } catch (const std::exception& e) {
      log::Warn("informer {}: watch: {}", name_, e.what());
      break;
    }
    if (ev.type == "ERROR") {
      // 410 Expired/Gone is routine (the resourceVersion was compacted).
      Json code = ev.object.is_object() ? ev.object.value("code", Json()) : Json();
      if (!(code.is_number_integer() && code.get<int>() == 410)) {
        log::Warn("informer {}: watch error: {}", name_, ev.object.dump());
      }
      break;
    }
    ++events;
    Apply(ev);
  }
  {
    std::lock_guard lock(watch_mu_);
    watch_ = nullptr;
  }
  watch->Stop();
  bool productive = events > 0 || std::chrono::steady_clock::now() - started >= kProductiveWatch;
  return productive ? WatchEnd::kProductive : WatchEnd::kUnproductive;
}

void Informer::Apply(const WatchEvent& ev) {
  if (ev.type == "BOOKMARK") return;
  std::string key = KeyOf(ev.object);
  Change change;
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(key);
    if (ev.type == "ADDED" || ev.type == "MODIFIED") {
      if (it == cache_.end()) {
        change = {Change::kAdd, nullptr, ev.object};
        cache_.emplace(key, ev.object);
      } else {
        change = {Change::kUpdate, it->second, ev.object};
        it->second = ev.object;
      }
    } else if (ev.type == "DELETED") {
      if (it == cache_.end()) return;
      cache_.erase(it);
      change = {Change::kDelete, nullptr, nullptr};
      change.old = ev.object;  // the last state, as the server sends it
    } else {
      log::Warn("informer {}: ignoring a watch event of type \"{}\"", name_, ev.type);
      return;
    }
  }
  Emit(change);
}

void Informer::Emit(const Change& c) {
  try {
    switch (c.kind) {
      case Change::kAdd:
        if (handlers_.on_add) handlers_.on_add(c.now);
        break;
      case Change::kUpdate:
        if (handlers_.on_update) handlers_.on_update(c.old, c.now);
        break;
      case Change::kDelete:
        if (handlers_.on_delete) handlers_.on_delete(c.old);
        break;
    }
  } catch (const std::exception& e) {
    log::Error("informer {}: handler: {}", name_, e.what());
  }
}

}  // namespace kin
