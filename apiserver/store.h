// Store: kin's etcd. Objects in memory for reads, SQLite for durability,
// a change history for watches.
//
// Objects live in buckets ("pods", "deployments.apps"), keyed by namespace
// and name, each a Record: the serialized JSON (with metadata.resourceVersion
// already set) plus its labels and selectable fields for cheap filtering.
// Every write gets the next value of one global revision counter (etcd's
// revision), becomes durable in SQLite (WAL mode) through group commit —
// concurrent writers share one transaction — and only then reaches watchers,
// in revision order. The last `history_limit` changes (at most
// `history_bytes` of them) stay replayable for watches, also across
// restarts: they are in SQLite. Only the newest `memory_history_bytes` of
// them are kept in memory too; a watch from before those replays the rest
// from SQLite. Older changes are compacted, and a watch from before them
// gets Gone (410).
//
// Reads (Get, List, Count, revision) see only durable writes, as etcd
// serves only committed ones: a write waiting for its commit is seen by the
// writes queued after it (they build on it, and fail with it), not by
// readers, so nothing a reader saw can be undone. Mutate() returns once its
// own write is durable, so a writer reads what it wrote.
//
// A write SQLite refuses (a full disk, an I/O error) is 500 InternalError
// naming the cause and the database, as kube-apiserver answers an etcd
// failure, and is undone: the revision is not advanced, no watcher hears of
// it, and the objects in memory are as before. Writes that were made after
// it and not yet durable (they may build on it) fail with it. Reads and
// watches go on; writes work again once SQLite can write.
//
// Thread-safety: all methods are thread-safe. Mutate() callbacks run under
// the store's write lock: they must be quick and must not call the store.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/error.h"
#include "base/yaml.h"

struct sqlite3;
struct sqlite3_stmt;

namespace kin::apiserver {

// Fields a field selector may test, extracted once per write: (name,
// value). Names must have static storage (literals, or strings that live as
// long as the program): every stored object has such a set, so only the
// values are its own (an Event's set with owned names cost twice as much).
using FieldSet = std::vector<std::pair<std::string_view, std::string>>;

struct Record {
  std::string ns;
  std::string name;
  uint64_t rv = 0;
  std::shared_ptr<const std::string> json;
  std::shared_ptr<const Json> labels;  // metadata.labels or null
  std::shared_ptr<const FieldSet> fields;

  Json Parse() const { return Json::parse(*json); }
  const std::string* Field(std::string_view name) const;
};

struct StoreEvent {
  enum class Type { kAdded, kModified, kDeleted };
  Type type;
  uint64_t rv;
  std::string bucket;
  Record now;   // the object after the change (for deletes: its last state)
  Record prev;  // before the change (empty for adds)
};

// The queue a watcher drains. The store pushes; Pop() waits.
class WatchQueue {
 public:
  explicit WatchQueue(size_t capacity, uint64_t min_rv = 0)
      : capacity_(capacity), min_rv_(min_rv) {}
  // False on timeout or once closed and drained.
  bool Pop(std::shared_ptr<const StoreEvent>& out, std::chrono::milliseconds timeout);
  void Close();
  bool closed() const;
  // True when the watcher fell too far behind and was cut off.
  bool overflowed() const;

 private:
  friend class Store;
  void Push(std::shared_ptr<const StoreEvent> e);
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<const StoreEvent>> q_;
  size_t capacity_;
  uint64_t min_rv_;  // events at or below this revision are not for this watcher
  bool closed_ = false;
  bool overflowed_ = false;
};

struct StoreOptions {
  size_t history_limit = 20000;  // changes kept for watch replay
  // ... and at most this many bytes of their objects' JSON, as
  // kube-apiserver's watch cache keeps a bounded window: a watch from an
  // older revision gets 410 Gone and relists. Without it, every change of
  // a churning cluster would stay in memory up to the count.
  size_t history_bytes = 8 << 20;
  // How much of that window also stays in memory, parsed for filtering, for
  // the watches that start from a recent revision (nearly all: informers
  // re-watch from their last event). Watches from older revisions read the
  // rest from SQLite. At 8 MiB in memory the window was a fifth of kin
  // serve's RSS with 100 pods; 256 KiB still holds the last few hundred
  // changes, more than an informer falls behind by.
  size_t memory_history_bytes = 256 << 10;
  size_t watch_queue_capacity = 100000;
  // Which fields of an object in `bucket` field selectors may use.
  std::function<FieldSet(const std::string& bucket, const Json& obj)> index_fields;
};

// What a Mutate() callback decides.
struct Mutation {
  enum class Action { kNone, kPut, kDelete };
  Action action = Action::kNone;
  Json object;  // for kPut: the new object (metadata.resourceVersion is set by the store)
};

class Store {
 public:
  // Opens (creating if needed) the database at `path` and loads it.
  static std::unique_ptr<Store> Open(const std::string& path, StoreOptions opts = {});
  ~Store();

  uint64_t revision() const;
  std::optional<Record> Get(const std::string& bucket, const std::string& ns,
                            const std::string& name) const;

  struct ListResult {
    std::vector<Record> items;
    uint64_t rv = 0;       // the store's revision when listed
    std::string next_key;  // non-empty when `limit` cut the list short
  };
  // Objects of `bucket` in (namespace, name) order; `ns` "" means all.
  // Starts after `start_after` ("ns/name"), stops after `limit` matches (0:
  // no limit).
  ListResult List(const std::string& bucket, const std::string& ns,
                  const std::function<bool(const Record&)>& filter, size_t limit = 0,
                  const std::string& start_after = "") const;
  // Number of objects in a bucket (all namespaces).
  size_t Count(const std::string& bucket) const;

  // Read-modify-write of one key: `fn` gets the current object (nullptr when
  // absent) and returns what to do. Returns the resulting record (for
  // deletes: the last state with the deletion's revision; for kNone: the
  // current record, or an empty one). Exceptions from `fn` propagate and
  // change nothing; so does a failed write to the database (Internal).
  Record Mutate(const std::string& bucket, const std::string& ns, const std::string& name,
                const std::function<Mutation(const Json* current)>& fn);

  // Starts a watch on `bucket` delivering every change after `from_rv`
  // (0: after the current revision). Throws Gone when changes after from_rv
  // were compacted.
  std::shared_ptr<WatchQueue> Watch(const std::string& bucket, uint64_t from_rv);
  void StopWatch(const std::shared_ptr<WatchQueue>& q);
  size_t open_watches() const;
  // The oldest revision a watch can still start from.
  uint64_t compacted_revision() const;
  // How many changes of the watch window memory holds (the rest are read
  // from SQLite when a watch needs them).
  size_t history_in_memory() const;
  // Size of the database files in bytes.
  uint64_t DatabaseBytes() const;

 private:
  Store(std::string path, StoreOptions opts);
  void Load();
  void Exec(const char* sql);
  Record MakeRecord(const std::string& bucket, const std::string& ns, const std::string& name,
                    uint64_t rv, std::string json, const Json& obj) const;
  // What became of one write waiting for its commit (guarded by commit_mu_).
  struct Ticket {
    bool done = false;
    std::optional<Error> failed;  // why, when its commit failed
  };
  // Makes the write of `ticket`, and every write before it, durable; throws
  // when its commit failed.
  void Commit(const std::shared_ptr<Ticket>& ticket);
  // An Internal error naming what SQLite reported for `what` and the database.
  Error WriteError(const std::string& what) const;

  struct PendingWrite {
    std::shared_ptr<const StoreEvent> event;
    std::string key;
    std::shared_ptr<Ticket> ticket;
  };
  // Undoes `batch` and every write queued after it in memory, newest first,
  // and fails their tickets with `why` (commit_mu_ held).
  void RollBack(std::vector<PendingWrite>& batch, const Error& why);
  // Deletes history rows up to compacted_rv_ (after a commit that trimmed).
  void CompactHistoryOnDisk();
  // What readers see of a key whose newest write is not durable yet: its
  // durable record (nullopt: absent), until the commit of `last_rv`.
  struct Shadow {
    std::optional<Record> durable;
    uint64_t last_rv = 0;
  };
  struct Bucket {
    std::map<std::string, Record> objects;  // "ns/name" -> record, newest (writers' view)
    std::map<std::string, Shadow> shadows;  // "ns/name" -> durable view, keys with pending writes
  };
  // The durable view of `key` in `b`: nullptr when absent (mu_ held).
  static const Record* DurableLocked(const Bucket& b, const std::string& key);

  std::string path_;
  StoreOptions opts_;
  sqlite3* db_ = nullptr;
  struct Statements;
  std::unique_ptr<Statements> stmts_;  // used under commit_mu_

  mutable std::mutex mu_;  // objects, revision, pending writes
  std::unordered_map<std::string, Bucket> buckets_;
  uint64_t rv_ = 0;
  std::vector<PendingWrite> pending_;

  std::mutex commit_mu_;     // one committer at a time; dispatch in revision order
  uint64_t durable_rv_ = 0;  // written under commit_mu_ and mu_

  mutable std::mutex watch_mu_;  // history, its window on disk, and watchers
  // The newest changes, within memory_history_bytes: every change after
  // memory_floor_rv_.
  std::deque<std::shared_ptr<const StoreEvent>> history_;
  size_t history_bytes_ = 0;  // the JSON of history_'s objects
  uint64_t memory_floor_rv_ = 0;
  // Every replayable change (after compacted_rv_), in SQLite's history
  // table: its revision and the size of its JSON, to keep the window's
  // limits without holding the objects.
  std::deque<std::pair<uint64_t, size_t>> window_;
  size_t window_bytes_ = 0;
  // Adds a durable change to both windows (watch_mu_ held).
  void AppendHistoryLocked(std::shared_ptr<const StoreEvent> event);
  // Drops the oldest changes beyond the limits, from memory and from the
  // window (watch_mu_ held); true when the window (compacted_rv_) moved.
  bool TrimHistoryLocked();
  // Pushes to `q` the changes of `bucket` after `from_rv` up to and
  // including memory_floor_rv_, read from SQLite (commit_mu_ and watch_mu_
  // held).
  void ReplayFromDiskLocked(const std::string& bucket, uint64_t from_rv, WatchQueue& q);
  // The change in a row of "SELECT rv, type, key, data FROM history"
  // (nullptr when unreadable).
  std::shared_ptr<StoreEvent> HistoryRow(sqlite3_stmt* st) const;
  uint64_t compacted_rv_ = 0;
  std::unordered_map<std::string, std::vector<std::shared_ptr<WatchQueue>>> watchers_;
};

}  // namespace kin::apiserver
