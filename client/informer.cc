#include "client/informer.h"

#include <algorithm>

#include "base/error.h"
#include "base/log.h"
#include "client/object.h"

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

using object::Key;
using object::StringAt;

std::string KeyOf(const Json& obj) { return object::Key(obj); }

// The cached form of an object: without metadata.managedFields, as
// kube-controller-manager and kube-scheduler cache them
// (TransformStripManagedFields). No controller reads them, an update that
// omits them keeps the server's, and they are often the larger part of an
// object: a pod written by five managers carries five field sets.
ObjectPtr CacheCopy(Json obj) {
  if (auto md = obj.find("metadata"); md != obj.end() && md->is_object()) {
    md->erase("managedFields");
  }
  return std::make_shared<const Json>(std::move(obj));
}

// The delay before retry number `n` (1-based): the first retry is immediate.
std::chrono::milliseconds RetryDelay(int n) {
  if (n <= 1) return std::chrono::milliseconds(0);
  auto d = kFirstDelay * (1LL << std::min(n - 2, 10));
  return std::min<std::chrono::milliseconds>(d, kMaxDelay);
}

}  // namespace

std::vector<std::string> IndexByNamespace(const Json& obj) {
  std::string ns = object::Namespace(obj);
  if (ns.empty()) return {};
  return {ns};
}

std::vector<std::string> IndexByOwnerUid(const Json& obj) { return object::OwnerUids(obj); }

std::vector<std::string> IndexByNodeName(const Json& obj) {
  std::string node = StringAt(obj, "spec", "nodeName");
  if (node.empty()) return {};
  return {node};
}

std::string LabelIndexName(const std::string& key) { return "label:" + key; }

IndexFunc IndexByLabel(std::string key) {
  return [key = std::move(key)](const Json& obj) -> std::vector<std::string> {
    auto v = object::Label(obj, key);
    if (!v) return {};
    return {*v};
  };
}

Informer::Informer(Client& client, const ResourceInfo& resource, InformerOptions opts,
                   InformerHandlers handlers)
    : client_(client),
      resource_(resource),
      opts_(std::move(opts)),
      name_(resource.group_resource() + (opts_.ns.empty() ? "" : " in " + opts_.ns)) {
  if (handlers.on_add || handlers.on_update || handlers.on_delete) {
    AddHandlers(std::move(handlers));
  }
}

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

Informer::HandlerId Informer::AddHandlers(InformerHandlers handlers) {
  std::lock_guard emit(emit_mu_);
  HandlerId id = next_id_++;
  auto next = std::make_shared<Registrations>(*handlers_);
  next->push_back({id, handlers});
  handlers_ = std::move(next);
  // emit_mu_ is held, so every cached object has been dispatched already:
  // the new handler catches up with one on_add each, then sees changes.
  if (handlers.on_add) {
    for (const ObjectPtr& obj : Items()) {
      try {
        handlers.on_add(*obj);
      } catch (const std::exception& e) {
        log::Error("informer {}: handler: {}", name_, e.what());
      }
    }
  }
  return id;
}

void Informer::RemoveHandlers(HandlerId id) {
  std::lock_guard emit(emit_mu_);
  auto next = std::make_shared<Registrations>();
  for (const auto& r : *handlers_) {
    if (r.id != id) next->push_back(r);
  }
  handlers_ = std::move(next);
}

void Informer::IndexAdd(Index& index, const std::string& key, const Json& obj) {
  for (auto& value : index.fn(obj)) index.keys[value].insert(key);
}

void Informer::IndexRemove(Index& index, const std::string& key, const Json& obj) {
  for (auto& value : index.fn(obj)) {
    auto it = index.keys.find(value);
    if (it == index.keys.end()) continue;
    it->second.erase(key);
    if (it->second.empty()) index.keys.erase(it);
  }
}

void Informer::Reindex(const std::string& key, const Json* old, const Json* now) {
  for (auto& [name, index] : indexes_) {
    if (old) IndexRemove(index, key, *old);
    if (now) IndexAdd(index, key, *now);
  }
}

bool Informer::AddIndex(const std::string& name, IndexFunc fn) {
  std::lock_guard lock(mu_);
  if (indexes_.contains(name)) return false;
  Index& index = indexes_[name];
  index.fn = std::move(fn);
  for (const auto& [key, obj] : cache_) IndexAdd(index, key, *obj);
  return true;
}

bool Informer::HasIndex(const std::string& name) const {
  std::lock_guard lock(mu_);
  return indexes_.contains(name);
}

std::vector<ObjectPtr> Informer::ObjectsOf(const std::set<std::string>& keys) const {
  std::vector<ObjectPtr> out;
  out.reserve(keys.size());
  for (const auto& key : keys) {
    auto it = cache_.find(key);
    if (it != cache_.end()) out.push_back(it->second);
  }
  return out;
}

std::vector<ObjectPtr> Informer::ByIndex(const std::string& name, const std::string& value) const {
  std::lock_guard lock(mu_);
  auto index = indexes_.find(name);
  if (index == indexes_.end()) {
    throw Error::Internal("informer " + name_ + ": no index \"" + name + "\"");
  }
  auto it = index->second.keys.find(value);
  if (it == index->second.keys.end()) return {};
  return ObjectsOf(it->second);
}

std::vector<std::string> Informer::IndexKeys(const std::string& name,
                                             const std::string& value) const {
  std::lock_guard lock(mu_);
  auto index = indexes_.find(name);
  if (index == indexes_.end()) {
    throw Error::Internal("informer " + name_ + ": no index \"" + name + "\"");
  }
  auto it = index->second.keys.find(value);
  if (it == index->second.keys.end()) return {};
  return {it->second.begin(), it->second.end()};
}

ObjectPtr Informer::Lookup(const std::string& ns, const std::string& name) const {
  return LookupKey(Key(resource_.namespaced ? ns : "", name));
}

ObjectPtr Informer::LookupKey(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = cache_.find(key);
  return it == cache_.end() ? nullptr : it->second;
}

std::vector<ObjectPtr> Informer::Items() const {
  std::lock_guard lock(mu_);
  std::vector<ObjectPtr> out;
  out.reserve(cache_.size());
  for (const auto& [key, obj] : cache_) out.push_back(obj);
  return out;
}

size_t Informer::Size() const {
  std::lock_guard lock(mu_);
  return cache_.size();
}

std::optional<Json> Informer::Get(const std::string& ns, const std::string& name) const {
  ObjectPtr obj = Lookup(ns, name);
  if (!obj) return std::nullopt;
  return *obj;
}

std::vector<Json> Informer::List() const {
  std::vector<Json> out;
  for (const ObjectPtr& obj : Items()) out.push_back(*obj);
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

  std::map<std::string, ObjectPtr> fresh;
  std::vector<std::string> order;  // the list's order, for the handlers
  if (auto it = list.find("items"); it != list.end() && it->is_array()) {
    for (auto& item : *it) {
      std::string key = KeyOf(item);
      if (!fresh.contains(key)) {
        fresh.emplace(key, CacheCopy(std::move(item)));
        order.push_back(key);
      }
    }
  }
  // Held until the differences are dispatched, so AddHandlers never sees a
  // cache ahead of what handlers have been told.
  std::lock_guard emit(emit_mu_);
  std::vector<Change> changes;
  bool first;
  {
    std::lock_guard lock(mu_);
    for (const auto& key : order) {
      const ObjectPtr& now = fresh[key];
      auto old = cache_.find(key);
      if (old == cache_.end()) {
        changes.push_back({Change::kAdd, nullptr, now});
      } else if (*old->second != *now) {
        changes.push_back({Change::kUpdate, old->second, now});
      }
    }
    for (const auto& [key, obj] : cache_) {
      if (!fresh.contains(key)) changes.push_back({Change::kDelete, obj, nullptr});
    }
    cache_ = std::move(fresh);
    for (auto& [name, index] : indexes_) {
      index.keys.clear();
      for (const auto& [key, obj] : cache_) IndexAdd(index, key, *obj);
    }
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
  if (ev.type != "ADDED" && ev.type != "MODIFIED" && ev.type != "DELETED") {
    log::Warn("informer {}: ignoring a watch event of type \"{}\"", name_, ev.type);
    return;
  }
  std::string key = KeyOf(ev.object);
  ObjectPtr obj = CacheCopy(ev.object);
  std::lock_guard emit(emit_mu_);  // see ListAndReplace
  Change change;
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(key);
    if (ev.type == "DELETED") {
      if (it == cache_.end()) return;
      Reindex(key, it->second.get(), nullptr);
      cache_.erase(it);
      change = {Change::kDelete, obj, nullptr};  // the last state, as the server sends it
    } else if (it == cache_.end()) {
      Reindex(key, nullptr, obj.get());
      cache_.emplace(key, obj);
      change = {Change::kAdd, nullptr, obj};
    } else {
      Reindex(key, it->second.get(), obj.get());
      change = {Change::kUpdate, it->second, obj};
      it->second = obj;
    }
  }
  Emit(change);
}

void Informer::Emit(const Change& c) {
  std::shared_ptr<const Registrations> regs = handlers_;
  for (const Registration& r : *regs) {
    // A handler may have removed another during this dispatch.
    if (handlers_ != regs && std::none_of(handlers_->begin(), handlers_->end(),
                                          [&](const Registration& x) { return x.id == r.id; })) {
      continue;
    }
    const InformerHandlers& h = r.handlers;
    try {
      switch (c.kind) {
        case Change::kAdd:
          if (h.on_add) h.on_add(*c.now);
          break;
        case Change::kUpdate:
          if (h.on_update) h.on_update(*c.old, *c.now);
          break;
        case Change::kDelete:
          if (h.on_delete) h.on_delete(*c.old);
          break;
      }
    } catch (const std::exception& e) {
      log::Error("informer {}: handler: {}", name_, e.what());
    }
  }
}

}  // namespace kin
