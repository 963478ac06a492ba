// Cgroup — RAII owner of one container's cgroup.
//
// cgroup v1 (this machine: hybrid, v1 controllers at /sys/fs/cgroup/<ctl>):
// one directory per controller, <root>/{memory,cpu,pids}/kin/<name>.
// cgroup v2 (a unified hierarchy whose cgroup.controllers lists memory, cpu
// and pids, at <root> or <root>/unified): one directory <v2>/kin/<name>, with
// the controllers enabled in the parents' cgroup.subtree_control.
//
// `name` is a single path component and should start with the caller's
// prefix (the kernel-test fixture finds leftovers by directory name). The
// destructor (or Remove()) SIGKILLs every process still inside, waits for
// the cgroup to empty, and removes the directories; the shared "kin" parent
// stays.
//
// Thread-safety: thread-compatible.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/container_spec.h"

namespace kin {

enum class CgroupVersion { kV1, kV2 };

class Cgroup {
 public:
  // Which layout the machine under `root` offers; v2 only when a unified
  // hierarchy has the memory, cpu and pids controllers.
  static CgroupVersion Detect(const std::string& root = "/sys/fs/cgroup");

  // Creates the cgroup and applies `limits` (zero fields: unlimited).
  // Throws AlreadyExists when it exists, Invalid for a bad name.
  static Cgroup Create(const std::string& name, const ResourceLimits& limits,
                       const std::string& root = "/sys/fs/cgroup");

  // The cgroup `name` as it exists (made by an earlier Create, maybe in
  // another process that is gone now); nullopt when no directory of it is
  // left. Remove() it to kill what is inside and remove it.
  static std::optional<Cgroup> Open(const std::string& name,
                                    const std::string& root = "/sys/fs/cgroup");

  Cgroup() = default;
  Cgroup(Cgroup&& o) noexcept;
  Cgroup& operator=(Cgroup&& o) noexcept;
  Cgroup(const Cgroup&) = delete;
  Cgroup& operator=(const Cgroup&) = delete;
  ~Cgroup();

  const std::string& name() const { return name_; }
  CgroupVersion version() const { return version_; }
  bool valid() const { return !dirs_.empty(); }
  // The directories (one per v1 controller, one for v2).
  const std::vector<std::string>& dirs() const { return dirs_; }
  // The cgroup.procs files a process writes "0" to, to enter the cgroup.
  std::vector<std::string> ProcsFiles() const;

  // `fresh`: the cgroup was just made and holds the kernel's defaults (no
  // limits), so only the limits that are set get written; a CPU bandwidth
  // write costs the kernel a walk over every CPU, for nothing when unlimited.
  void Apply(const ResourceLimits& limits, bool fresh = false);
  void AddProcess(pid_t pid);
  // Pids inside (of the memory hierarchy on v1), as seen from our pid namespace.
  std::vector<pid_t> Pids() const;
  // Processes the kernel's OOM killer killed in this cgroup (v1
  // memory.oom_control / v2 memory.events "oom_kill"): OOMKilled detection.
  uint64_t OomKillCount() const;
  // Times the memory limit was hit (v1 memory.failcnt / v2 memory.events "max").
  // Informational only: on kernel 6.18 the v1 failcnt stayed 0 even across an
  // OOM kill, so use OomKillCount() to decide OOMKilled.
  uint64_t MemoryLimitHits() const;

  // Kills what is left, removes the directories. Idempotent. Throws when a
  // directory cannot be removed (processes that would not die).
  void Remove();

 private:
  std::string name_;
  CgroupVersion version_ = CgroupVersion::kV1;
  std::vector<std::string> dirs_;
  std::string memory_dir_, cpu_dir_, pids_dir_;
};

// The names of the cgroups under the shared "kin" parent (any controller's,
// or the v2 one's) that start with `prefix`, each once, sorted.
std::vector<std::string> CgroupsWithPrefix(const std::string& prefix,
                                           const std::string& root = "/sys/fs/cgroup");

// Where a v2 unified hierarchy with memory, cpu and pids is mounted, or "".
std::string FindCgroupV2WithControllers(const std::string& root = "/sys/fs/cgroup");

}  // namespace kin
