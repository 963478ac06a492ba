#include "apiserver/store.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/error.h"
#include "base/log.h"

namespace kin::apiserver {

// A prepared statement, finalized on destruction.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) {
    if (sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) != SQLITE_OK) {
      throw Error::Internal(std::string("sqlite prepare: ") + sqlite3_errmsg(db));
    }
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  sqlite3_stmt* get() { return s_; }
  void Reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }

 private:
  sqlite3_stmt* s_ = nullptr;
};

struct Store::Statements {
  explicit Statements(sqlite3* db)
      : put(db, "INSERT OR REPLACE INTO objects(key, rv, data) VALUES(?, ?, ?)"),
        del(db, "DELETE FROM objects WHERE key = ?"),
        hist(db, "INSERT OR REPLACE INTO history(rv, type, key, data) VALUES(?, ?, ?, ?)"),
        meta_rv(db, "INSERT OR REPLACE INTO meta(k, v) VALUES('rv', ?)") {}
  Stmt put, del, hist, meta_rv;
};

namespace {

std::string KeyOf(const std::string& bucket, const std::string& ns, const std::string& name) {
  return bucket + "/" + ns + "/" + name;
}

// "bucket/ns/name" -> parts (bucket has no '/', names have none either).
bool SplitKey(const std::string& key, std::string& bucket, std::string& ns, std::string& name) {
  size_t a = key.find('/');
  if (a == std::string::npos) return false;
  size_t b = key.find('/', a + 1);
  if (b == std::string::npos) return false;
  bucket = key.substr(0, a);
  ns = key.substr(a + 1, b - a - 1);
  name = key.substr(b + 1);
  return true;
}

}  // namespace

const std::string* Record::Field(std::string_view name) const {
  if (!fields) return nullptr;
  for (const auto& [k, v] : *fields) {
    if (k == name) return &v;
  }
  return nullptr;
}

// --- WatchQueue -------------------------------------------------------------

bool WatchQueue::Pop(std::shared_ptr<const StoreEvent>& out, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  // A zero timeout is a poll: no futex wait (the authorizer polls its RBAC
  // watches on every request).
  if (timeout.count() > 0) cv_.wait_for(lock, timeout, [&] { return !q_.empty() || closed_; });
  if (q_.empty()) return false;
  out = std::move(q_.front());
  q_.pop_front();
  return true;
}

void WatchQueue::Push(std::shared_ptr<const StoreEvent> e) {
  {
    std::lock_guard lock(mu_);
    if (closed_ || e->rv <= min_rv_) return;
    if (q_.size() >= capacity_) {
      // A watcher this far behind is cut off; its client re-lists.
      overflowed_ = true;
      closed_ = true;
      q_.clear();
    } else {
      q_.push_back(std::move(e));
    }
  }
  cv_.notify_one();
}

void WatchQueue::Close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

bool WatchQueue::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

bool WatchQueue::overflowed() const {
  std::lock_guard lock(mu_);
  return overflowed_;
}

// --- Store ------------------------------------------------------------------

Store::Store(std::string path, StoreOptions opts)
    : path_(std::move(path)), opts_(std::move(opts)) {}

Store::~Store() {
  stmts_.reset();  // finalized before the database closes
  {
    std::lock_guard lock(watch_mu_);
    for (auto& [b, list] : watchers_) {
      for (auto& q : list) q->Close();
    }
  }
  if (db_ != nullptr) sqlite3_close_v2(db_);
}

std::unique_ptr<Store> Store::Open(const std::string& path, StoreOptions opts) {
  std::unique_ptr<Store> s(new Store(path, std::move(opts)));
  if (sqlite3_open_v2(path.c_str(), &s->db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string msg = s->db_ ? sqlite3_errmsg(s->db_) : "out of memory";
    throw Error::Internal("open database " + path + ": " + msg);
  }
  s->Exec("PRAGMA journal_mode=WAL");
  s->Exec("PRAGMA synchronous=NORMAL");
  s->Exec("PRAGMA busy_timeout=5000");
  s->Exec(
      "CREATE TABLE IF NOT EXISTS objects(key TEXT PRIMARY KEY, rv INTEGER NOT NULL, "
      "data TEXT NOT NULL) WITHOUT ROWID");
  s->Exec(
      "CREATE TABLE IF NOT EXISTS history(rv INTEGER PRIMARY KEY, type INTEGER NOT NULL, "
      "key TEXT NOT NULL, data TEXT NOT NULL)");
  s->Exec("CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL)");
  s->Load();
  return s;
}

void Store::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw Error::Internal(std::string("database: ") + msg + " (in: " + sql + ")");
  }
}

Record Store::MakeRecord(const std::string& bucket, const std::string& ns, const std::string& name,
                         uint64_t rv, std::string json, const Json& obj) const {
  Record r;
  r.ns = ns;
  r.name = name;
  r.rv = rv;
  r.json = std::make_shared<const std::string>(std::move(json));
  const Json* labels = nullptr;
  if (auto m = obj.find("metadata"); m != obj.end() && m->is_object()) {
    if (auto l = m->find("labels"); l != m->end() && l->is_object()) labels = &*l;
  }
  // Most objects have labels; those without (Events) share one null.
  static const auto kNoLabels = std::make_shared<const Json>(nullptr);
  r.labels = labels ? std::make_shared<const Json>(*labels) : kNoLabels;
  FieldSet fs = opts_.index_fields ? opts_.index_fields(bucket, obj) : FieldSet{};
  r.fields = std::make_shared<const FieldSet>(std::move(fs));
  return r;
}

void Store::Load() {
  {
    Stmt st(db_, "SELECT k, v FROM meta");
    while (sqlite3_step(st.get()) == SQLITE_ROW) {
      std::string k = reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 0));
      uint64_t v = sqlite3_column_int64(st.get(), 1);
      if (k == "rv") rv_ = v;
      if (k == "compacted") compacted_rv_ = v;
    }
  }
  size_t n = 0;
  {
    Stmt st(db_, "SELECT key, rv, data FROM objects");
    while (sqlite3_step(st.get()) == SQLITE_ROW) {
      std::string key = reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 0));
      uint64_t rv = sqlite3_column_int64(st.get(), 1);
      std::string data(reinterpret_cast<const char*>(sqlite3_column_text(st.get(), 2)),
                       sqlite3_column_bytes(st.get(), 2));
      std::string bucket, ns, name;
      if (!SplitKey(key, bucket, ns, name)) continue;
      Json obj = Json::parse(data, nullptr, false);
      if (obj.is_discarded()) {
        log::Warn("store: skipping unreadable object {}", key);
        continue;
      }
      buckets_[bucket].objects[ns + "/" + name] =
          MakeRecord(bucket, ns, name, rv, std::move(data), obj);
      rv_ = std::max(rv_, rv);
      ++n;
    }
  }
  {
    // The window's revisions and sizes first; then only the newest changes,
    // those memory keeps, are read and parsed.
    Stmt st(db_, "SELECT rv, length(data) FROM history ORDER BY rv");
    while (sqlite3_step(st.get()) == SQLITE_ROW) {
      uint64_t rv = sqlite3_column_int64(st.get(), 0);
      size_t bytes = sqlite3_column_int64(st.get(), 1);
      window_.emplace_back(rv, bytes);
      window_bytes_ += bytes;
      rv_ = std::max(rv_, rv);
    }
  }
  if (!window_.empty())
    compacted_rv_ = std::max(compacted_rv_, window_.front().first - 1);
  else
    compacted_rv_ = rv_;
  TrimHistoryLocked();
  memory_floor_rv_ = compacted_rv_;
  {
    size_t bytes = 0;
    auto it = window_.end();
    while (it != window_.begin() && bytes + std::prev(it)->second <= opts_.memory_history_bytes) {
      --it;
      bytes += it->second;
    }
    if (it != window_.begin()) memory_floor_rv_ = std::prev(it)->first;
  }
  {
    Stmt st(db_, "SELECT rv, type, key, data FROM history WHERE rv > ? ORDER BY rv");
    sqlite3_bind_int64(st.get(), 1, static_cast<int64_t>(memory_floor_rv_));
    while (sqlite3_step(st.get()) == SQLITE_ROW) {
      std::shared_ptr<StoreEvent> ev = HistoryRow(st.get());
      if (!ev) continue;
      history_bytes_ += ev->now.json->size();
      history_.push_back(std::move(ev));
    }
  }
  durable_rv_ = rv_;
  log::Debug("store: loaded {} objects and {} history entries ({} in memory) at revision {}", n,
             window_.size(), history_.size(), rv_);
}

void Store::AppendHistoryLocked(std::shared_ptr<const StoreEvent> event) {
  const size_t bytes = event->now.json ? event->now.json->size() : 0;
  window_.emplace_back(event->rv, bytes);
  window_bytes_ += bytes;
  history_bytes_ += bytes;
  history_.push_back(std::move(event));
}

bool Store::TrimHistoryLocked() {
  bool trimmed = false;
  // The newest change always stays, however large.
  while (window_.size() > opts_.history_limit ||
         (window_bytes_ > opts_.history_bytes && window_.size() > 1)) {
    window_bytes_ -= std::min(window_bytes_, window_.front().second);
    compacted_rv_ = window_.front().first;
    window_.pop_front();
    trimmed = true;
  }
  while (!history_.empty() &&
         (history_.front()->rv <= compacted_rv_ ||
          (history_bytes_ > opts_.memory_history_bytes && history_.size() > 1))) {
    const auto& front = history_.front();
    history_bytes_ -= front->now.json ? std::min(history_bytes_, front->now.json->size()) : 0;
    memory_floor_rv_ = front->rv;
    history_.pop_front();
  }
  memory_floor_rv_ = std::max(memory_floor_rv_, compacted_rv_);
  return trimmed;
}

std::shared_ptr<StoreEvent> Store::HistoryRow(sqlite3_stmt* st) const {
  auto ev = std::make_shared<StoreEvent>();
  ev->rv = sqlite3_column_int64(st, 0);
  ev->type = static_cast<StoreEvent::Type>(sqlite3_column_int(st, 1));
  std::string key = reinterpret_cast<const char*>(sqlite3_column_text(st, 2));
  std::string data(reinterpret_cast<const char*>(sqlite3_column_text(st, 3)),
                   sqlite3_column_bytes(st, 3));
  std::string ns, name;
  if (!SplitKey(key, ev->bucket, ns, name)) return nullptr;
  Json obj = Json::parse(data, nullptr, false);
  if (obj.is_discarded()) return nullptr;
  ev->now = MakeRecord(ev->bucket, ns, name, ev->rv, std::move(data), obj);
  return ev;
}

void Store::ReplayFromDiskLocked(const std::string& bucket, uint64_t from_rv, WatchQueue& q) {
  // history's key is "bucket/ns/name": the bucket's rows are the keys from
  // "bucket/" up to "bucket0" ('0' follows '/').
  Stmt st(db_,
          "SELECT rv, type, key, data FROM history WHERE rv > ? AND rv <= ? AND key >= ? AND "
          "key < ? ORDER BY rv");
  const std::string lo = bucket + "/", hi = bucket + "0";
  sqlite3_bind_int64(st.get(), 1, static_cast<int64_t>(from_rv));
  sqlite3_bind_int64(st.get(), 2, static_cast<int64_t>(memory_floor_rv_));
  sqlite3_bind_text(st.get(), 3, lo.data(), lo.size(), SQLITE_STATIC);
  sqlite3_bind_text(st.get(), 4, hi.data(), hi.size(), SQLITE_STATIC);
  int rc;
  while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
    if (std::shared_ptr<StoreEvent> ev = HistoryRow(st.get())) q.Push(std::move(ev));
  }
  if (rc != SQLITE_DONE) {
    throw Error::Internal("read the watch history from the cluster store: " +
                          std::string(sqlite3_errmsg(db_)) + " (" + path_ + ")");
  }
}

uint64_t Store::revision() const {
  std::lock_guard lock(mu_);
  return durable_rv_;
}

const Record* Store::DurableLocked(const Bucket& b, const std::string& key) {
  if (!b.shadows.empty()) {
    auto s = b.shadows.find(key);
    if (s != b.shadows.end()) return s->second.durable ? &*s->second.durable : nullptr;
  }
  auto it = b.objects.find(key);
  return it == b.objects.end() ? nullptr : &it->second;
}

std::optional<Record> Store::Get(const std::string& bucket, const std::string& ns,
                                 const std::string& name) const {
  std::lock_guard lock(mu_);
  auto b = buckets_.find(bucket);
  if (b == buckets_.end()) return std::nullopt;
  const Record* r = DurableLocked(b->second, ns + "/" + name);
  if (r == nullptr) return std::nullopt;
  return *r;
}

Store::ListResult Store::List(const std::string& bucket, const std::string& ns,
                              const std::function<bool(const Record&)>& filter, size_t limit,
                              const std::string& start_after) const {
  ListResult out;
  std::lock_guard lock(mu_);
  out.rv = durable_rv_;
  auto b = buckets_.find(bucket);
  if (b == buckets_.end()) return out;
  const auto& objs = b->second.objects;
  const auto& shadows = b->second.shadows;
  if (ns.empty() && !filter)
    out.items.reserve(limit > 0 ? std::min(limit, objs.size()) : objs.size());
  const std::string ns_prefix = ns.empty() ? "" : ns + "/";
  auto first = [&](const auto& m) {
    if (!start_after.empty()) return m.upper_bound(start_after);
    if (!ns_prefix.empty()) return m.lower_bound(ns_prefix);
    return m.begin();
  };
  // The durable view: the objects, and for keys with pending writes their
  // shadows, merged in key order (a pending delete's object is in its
  // shadow only, a pending create's in neither).
  auto it = first(objs);
  auto sh = first(shadows);
  while (it != objs.end() || sh != shadows.end()) {
    const std::string* key;
    const Record* r;
    if (sh == shadows.end() || (it != objs.end() && it->first < sh->first)) {
      key = &it->first;
      r = &it->second;
      ++it;
    } else {
      if (it != objs.end() && it->first == sh->first) ++it;
      key = &sh->first;
      r = sh->second.durable ? &*sh->second.durable : nullptr;
      ++sh;
    }
    if (!ns_prefix.empty() && key->compare(0, ns_prefix.size(), ns_prefix) != 0) break;
    if (r == nullptr || (filter && !filter(*r))) continue;
    if (limit > 0 && out.items.size() == limit) {
      // There is at least one more match: the caller gets a continue key.
      out.next_key = out.items.back().ns + "/" + out.items.back().name;
      break;
    }
    out.items.push_back(*r);
  }
  return out;
}

size_t Store::Count(const std::string& bucket) const {
  std::lock_guard lock(mu_);
  auto b = buckets_.find(bucket);
  if (b == buckets_.end()) return 0;
  size_t n = b->second.objects.size();
  for (const auto& [key, shadow] : b->second.shadows) {
    const bool now = b->second.objects.count(key) > 0;
    if (now && !shadow.durable) --n;
    if (!now && shadow.durable) ++n;
  }
  return n;
}

Record Store::Mutate(const std::string& bucket, const std::string& ns, const std::string& name,
                     const std::function<Mutation(const Json* current)>& fn) {
  Record result;
  auto ticket = std::make_shared<Ticket>();
  bool unchanged = false;
  {
    std::lock_guard lock(mu_);
    Bucket& b = buckets_[bucket];
    const std::string key = ns + "/" + name;
    auto it = b.objects.find(key);
    std::optional<Json> current;
    if (it != b.objects.end()) current = it->second.Parse();
    Mutation m = fn(current ? &*current : nullptr);
    unchanged = m.action == Mutation::Action::kNone ||
                (m.action == Mutation::Action::kDelete && it == b.objects.end());
    if (unchanged && !b.shadows.count(key)) {
      return m.action == Mutation::Action::kNone && it != b.objects.end() ? it->second : Record{};
    }
    if (!unchanged) {
      // Everything that may throw (serializing: invalid UTF-8 does) comes
      // before the revision and the objects change.
      const uint64_t my_rv = rv_ + 1;
      auto ev = std::make_shared<StoreEvent>();
      ev->bucket = bucket;
      ev->rv = my_rv;
      if (m.action == Mutation::Action::kPut) {
        m.object["metadata"]["resourceVersion"] = std::to_string(my_rv);
        ev->now = MakeRecord(bucket, ns, name, my_rv, m.object.dump(), m.object);
        if (it != b.objects.end()) {
          ev->type = StoreEvent::Type::kModified;
          ev->prev = it->second;
        } else {
          ev->type = StoreEvent::Type::kAdded;
        }
      } else {
        // The DELETED event carries the last state at the deletion's revision.
        current->at("metadata")["resourceVersion"] = std::to_string(my_rv);
        ev->type = StoreEvent::Type::kDeleted;
        ev->prev = it->second;
        ev->now = MakeRecord(bucket, ns, name, my_rv, current->dump(), *current);
      }
      // Readers keep the durable state until the commit: the first pending
      // write of a key keeps what it replaces.
      auto shadow = b.shadows.find(key);
      if (shadow == b.shadows.end()) {
        Shadow sh;
        if (it != b.objects.end()) sh.durable = it->second;
        shadow = b.shadows.emplace(key, std::move(sh)).first;
      }
      // Queued first: should that throw, nothing else has changed yet (an
      // unused shadow is harmless: it holds the durable state).
      pending_.push_back({ev, KeyOf(bucket, ns, name), ticket});
      shadow->second.last_rv = my_rv;
      rv_ = my_rv;
      if (ev->type == StoreEvent::Type::kDeleted) {
        b.objects.erase(it);
      } else if (it != b.objects.end()) {
        it->second = ev->now;
      } else {
        b.objects.emplace(key, ev->now);
      }
      result = ev->now;
    }
  }
  // Returns once ours is durable. Unchanged: nothing of ours to write, but
  // the answer builds on a pending write; a ticket in no batch commits (or
  // waits for) what is pending, and the answer is what that left.
  Commit(ticket);
  if (unchanged) return Get(bucket, ns, name).value_or(Record{});
  return result;
}

Error Store::WriteError(const std::string& what) const {
  std::string msg = "write to the cluster store: " + what + sqlite3_errmsg(db_);
  // An I/O error says only "disk I/O error"; the errno says which (ENOSPC
  // when the filesystem filled up under an fsync). SQLite records the errno
  // for I/O and open errors only: for others it is stale.
  const int rc = sqlite3_errcode(db_);
  if (rc == SQLITE_IOERR) {
    // ... and which operation failed.
    switch (sqlite3_extended_errcode(db_)) {
      case SQLITE_IOERR_WRITE:
        msg += " in a write";
        break;
      case SQLITE_IOERR_FSYNC:
      case SQLITE_IOERR_DIR_FSYNC:
        msg += " in an fsync";
        break;
      case SQLITE_IOERR_TRUNCATE:
        msg += " in a truncate";
        break;
      case SQLITE_IOERR_SHMSIZE:
        msg += " growing the WAL index";
        break;
      default:
        msg += " (SQLite code " + std::to_string(sqlite3_extended_errcode(db_)) + ")";
    }
  }
  const int sys = rc == SQLITE_IOERR || rc == SQLITE_CANTOPEN ? sqlite3_system_errno(db_) : 0;
  if (sys != 0) msg += std::string(": ") + std::strerror(sys);
  Error e = Error::Internal(msg + " (" + path_ + ")");
  e.WithErrno(rc == SQLITE_FULL ? ENOSPC : sys);
  return e;
}

void Store::RollBack(std::vector<PendingWrite>& batch, const Error& why) {
  std::lock_guard lock(mu_);
  // Writes made since the batch was taken may have read its objects: they
  // go too (their writers get the same error).
  for (auto& w : pending_) batch.push_back(std::move(w));
  pending_.clear();
  for (auto w = batch.rbegin(); w != batch.rend(); ++w) {
    const StoreEvent& e = *w->event;
    Bucket& b = buckets_[e.bucket];
    const std::string key = e.now.ns + "/" + e.now.name;
    if (e.type == StoreEvent::Type::kAdded) {
      b.objects.erase(key);
    } else {
      b.objects[key] = e.prev;
    }
    // Every pending write is undone: the objects are the durable state.
    b.shadows.erase(key);
    w->ticket->failed = why;
  }
  // Every write after durable_rv_ was in the batch or queued after it.
  rv_ = durable_rv_;
}

void Store::Commit(const std::shared_ptr<Ticket>& ticket) {
  std::lock_guard commit_lock(commit_mu_);
  if (ticket->done) return;  // another writer's commit carried ours
  if (ticket->failed) throw Error(*ticket->failed);
  std::vector<PendingWrite> batch;
  {
    std::lock_guard lock(mu_);
    batch.swap(pending_);
  }
  // Ours is in it: it was queued before we took commit_mu_, and whoever
  // took the queue since has settled it.
  if (batch.empty()) return;
  uint64_t last = batch.back().event->rv;
  try {
    // A transaction a failed commit left open (SQLite may keep it after
    // some errors) would make BEGIN fail for ever.
    if (sqlite3_get_autocommit(db_) == 0) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    if (sqlite3_exec(db_, "BEGIN", nullptr, nullptr, nullptr) != SQLITE_OK) {
      throw WriteError("begin: ");
    }
    // Prepared once per store: parsing SQL per commit showed up in profiles.
    if (!stmts_) {
      stmts_ = std::make_unique<Statements>(db_);
    }
    auto step = [&](Stmt& st) {
      int rc = sqlite3_step(st.get());
      if (rc != SQLITE_DONE) throw WriteError("");
      st.Reset();
    };
    Stmt& put = stmts_->put;
    Stmt& del = stmts_->del;
    Stmt& hist = stmts_->hist;
    for (const auto& w : batch) {
      const StoreEvent& e = *w.event;
      const std::string& data = *e.now.json;
      if (e.type == StoreEvent::Type::kDeleted) {
        sqlite3_bind_text(del.get(), 1, w.key.data(), w.key.size(), SQLITE_STATIC);
        step(del);
      } else {
        sqlite3_bind_text(put.get(), 1, w.key.data(), w.key.size(), SQLITE_STATIC);
        sqlite3_bind_int64(put.get(), 2, e.rv);
        sqlite3_bind_text(put.get(), 3, data.data(), data.size(), SQLITE_STATIC);
        step(put);
      }
      sqlite3_bind_int64(hist.get(), 1, e.rv);
      sqlite3_bind_int(hist.get(), 2, static_cast<int>(e.type));
      sqlite3_bind_text(hist.get(), 3, w.key.data(), w.key.size(), SQLITE_STATIC);
      sqlite3_bind_text(hist.get(), 4, data.data(), data.size(), SQLITE_STATIC);
      step(hist);
    }
    Stmt& meta = stmts_->meta_rv;
    sqlite3_bind_int64(meta.get(), 1, last);
    step(meta);
    // In WAL mode the commit is where pages reach the disk: where a full
    // disk usually shows.
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
      throw WriteError("");
    }
  } catch (const Error& e) {
    if (stmts_) {
      for (Stmt* st : {&stmts_->put, &stmts_->del, &stmts_->hist, &stmts_->meta_rv}) st->Reset();
    }
    if (sqlite3_get_autocommit(db_) == 0) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    log::Error("store: commit of revisions {}..{} failed: {}", batch.front().event->rv, last,
               e.message());
    RollBack(batch, e);
    // A ticket in no batch (Mutate's wait for a pending write) did not fail.
    if (ticket->failed) throw Error(*ticket->failed);
    return;
  }
  {
    std::lock_guard lock(mu_);
    durable_rv_ = last;
    // Readers see these writes now; a key written again since keeps a
    // shadow, now holding this batch's last state of it.
    for (const auto& w : batch) {
      const StoreEvent& e = *w.event;
      Bucket& b = buckets_[e.bucket];
      auto sh = b.shadows.find(e.now.ns + "/" + e.now.name);
      if (sh == b.shadows.end()) continue;
      if (sh->second.last_rv <= last) {
        b.shadows.erase(sh);
      } else if (e.type == StoreEvent::Type::kDeleted) {
        sh->second.durable.reset();
      } else {
        sh->second.durable = e.now;
      }
    }
  }
  for (auto& w : batch) w.ticket->done = true;

  // Compaction: keep the newest history_limit changes, in memory and on disk.
  std::lock_guard watch_lock(watch_mu_);
  for (const auto& w : batch) AppendHistoryLocked(w.event);
  bool compacted = TrimHistoryLocked();
  if (compacted && (last % 256 == 0 || batch.size() > 1)) CompactHistoryOnDisk();

  // Dispatch in revision order, still under commit_mu_ so batches stay ordered.
  for (const auto& w : batch) {
    auto it = watchers_.find(w.event->bucket);
    if (it == watchers_.end()) continue;
    auto& list = it->second;
    for (auto& q : list) q->Push(w.event);
    std::erase_if(list, [](const auto& q) { return q->closed(); });
  }
}

void Store::CompactHistoryOnDisk() {
  // Its own transaction, after the writes are durable: when it fails (the
  // disk is full) the writes stand, and the rows it would have deleted are
  // trimmed on the next load or compaction.
  const std::string rv = std::to_string(compacted_rv_);
  const std::string sql = "BEGIN; DELETE FROM history WHERE rv <= " + rv +
                          "; INSERT OR REPLACE INTO meta(k, v) VALUES('compacted', " + rv +
                          "); COMMIT";
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    log::Warn("store: compacting history up to revision {}: {}", rv, err ? err : "unknown error");
    if (sqlite3_get_autocommit(db_) == 0) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  sqlite3_free(err);
}

std::shared_ptr<WatchQueue> Store::Watch(const std::string& bucket, uint64_t from_rv) {
  if (from_rv == 0) from_rv = revision();
  auto q = std::make_shared<WatchQueue>(opts_.watch_queue_capacity, from_rv);
  // Holding commit_mu_ keeps commits (and dispatch) out while we replay and
  // register, so the watcher sees every change exactly once.
  std::lock_guard commit_lock(commit_mu_);
  std::lock_guard lock(watch_mu_);
  {
    if (from_rv < compacted_rv_) {
      throw Error::Gone("too old resource version: " + std::to_string(from_rv) + " (" +
                        std::to_string(compacted_rv_) + ")");
    }
    if (from_rv < memory_floor_rv_) ReplayFromDiskLocked(bucket, from_rv, *q);
    auto it = std::upper_bound(history_.begin(), history_.end(), from_rv,
                               [](uint64_t rv, const auto& e) { return rv < e->rv; });
    for (; it != history_.end(); ++it) {
      if ((*it)->bucket == bucket) q->Push(*it);
    }
  }
  watchers_[bucket].push_back(q);
  return q;
}

void Store::StopWatch(const std::shared_ptr<WatchQueue>& q) {
  q->Close();
  std::lock_guard lock(watch_mu_);
  for (auto& [b, list] : watchers_) std::erase(list, q);
}

size_t Store::open_watches() const {
  std::lock_guard lock(watch_mu_);
  size_t n = 0;
  for (const auto& [b, list] : watchers_) {
    for (const auto& q : list) n += q->closed() ? 0 : 1;
  }
  return n;
}

size_t Store::history_in_memory() const {
  std::lock_guard lock(watch_mu_);
  return history_.size();
}

uint64_t Store::compacted_revision() const {
  std::lock_guard lock(watch_mu_);
  return compacted_rv_;
}

uint64_t Store::DatabaseBytes() const {
  uint64_t total = 0;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    struct stat st {};
    if (::stat((path_ + suffix).c_str(), &st) == 0) total += st.st_size;
  }
  return total;
}

}  // namespace kin::apiserver
