#include "runtime/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>
#include <utility>

#include "base/error.h"

namespace kin {

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw ErrnoError(errno ? errno : ENOENT, "read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Cgroup files want one write() per value; ofstream may split or defer it.
void WriteFile(const std::string& path, const std::string& value) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) throw ErrnoError(errno, "open " + path);
  ssize_t n = ::write(fd, value.data(), value.size());
  int err = errno;
  ::close(fd);
  if (n < 0) throw ErrnoError(err, "write \"" + value + "\" to " + path);
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

void MkdirIfMissing(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) < 0 && errno != EEXIST) throw ErrnoError(errno, "mkdir " + path);
}

// "key value" lines (memory.events, memory.oom_control, pids.events).
uint64_t KeyedValue(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string k;
  uint64_t v;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return 0;
}

bool HasWords(const std::string& text, const std::vector<std::string>& words) {
  for (const auto& w : words) {
    std::istringstream in(text);
    bool found = false;
    for (std::string t; in >> t;) found = found || t == w;
    if (!found) return false;
  }
  return true;
}

std::vector<pid_t> ReadPids(const std::string& procs_file) {
  std::vector<pid_t> out;
  std::ifstream in(procs_file);
  for (pid_t p; in >> p;) out.push_back(p);
  return out;
}

// The path of the first sub-directory of `dir` (a child cgroup), "" when none.
std::string FirstChildDir(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return "";
  std::string out;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (e->d_type == DT_DIR && n != "." && n != "..") {
      out = dir + "/" + n;
      break;
    }
  }
  ::closedir(d);
  return out;
}

}  // namespace

std::string FindCgroupV2WithControllers(const std::string& root) {
  for (const auto& dir : {root, root + "/unified"}) {
    std::string controllers = dir + "/cgroup.controllers";
    if (!Exists(controllers)) continue;
    if (HasWords(ReadFile(controllers), {"memory", "cpu", "pids"})) return dir;
  }
  return "";
}

std::vector<std::string> CgroupsWithPrefix(const std::string& prefix, const std::string& root) {
  std::set<std::string> names;
  std::vector<std::string> parents;
  if (std::string v2 = FindCgroupV2WithControllers(root); !v2.empty()) {
    parents.push_back(v2 + "/kin");
  } else {
    for (const char* c : {"/memory", "/cpu", "/pids"}) parents.push_back(root + c + "/kin");
  }
  for (const auto& parent : parents) {
    DIR* d = ::opendir(parent.c_str());
    if (d == nullptr) continue;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (e->d_type == DT_DIR && n.rfind(prefix, 0) == 0) names.insert(n);
    }
    ::closedir(d);
  }
  return {names.begin(), names.end()};
}

CgroupVersion Cgroup::Detect(const std::string& root) {
  return FindCgroupV2WithControllers(root).empty() ? CgroupVersion::kV1 : CgroupVersion::kV2;
}

Cgroup Cgroup::Create(const std::string& name, const ResourceLimits& limits,
                      const std::string& root) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
    throw Error::Invalid("cgroup name \"" + name + "\" must be a single path component");
  }
  Cgroup cg;
  cg.name_ = name;
  std::string v2 = FindCgroupV2WithControllers(root);
  auto make = [&](const std::string& base) {
    MkdirIfMissing(base + "/kin");
    std::string dir = base + "/kin/" + name;
    if (::mkdir(dir.c_str(), 0755) < 0) {
      throw ErrnoError(errno, "create cgroup " + dir);
    }
    cg.dirs_.push_back(dir);  // owned from here on: removed if a later step throws
    return dir;
  };
  if (!v2.empty()) {
    cg.version_ = CgroupVersion::kV2;
    // Controllers must be enabled in every ancestor's subtree_control.
    WriteFile(v2 + "/cgroup.subtree_control", "+memory +cpu +pids");
    MkdirIfMissing(v2 + "/kin");
    WriteFile(v2 + "/kin/cgroup.subtree_control", "+memory +cpu +pids");
    std::string dir = make(v2);
    cg.memory_dir_ = cg.cpu_dir_ = cg.pids_dir_ = dir;
  } else {
    cg.version_ = CgroupVersion::kV1;
    cg.memory_dir_ = make(root + "/memory");
    cg.cpu_dir_ = make(root + "/cpu");
    cg.pids_dir_ = make(root + "/pids");
  }
  cg.Apply(limits, /*fresh=*/true);
  return cg;
}

std::optional<Cgroup> Cgroup::Open(const std::string& name, const std::string& root) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
    throw Error::Invalid("cgroup name \"" + name + "\" must be a single path component");
  }
  Cgroup cg;
  cg.name_ = name;
  auto find = [&](const std::string& base) {
    std::string dir = base + "/kin/" + name;
    if (!Exists(dir)) return std::string();
    cg.dirs_.push_back(dir);
    return dir;
  };
  std::string v2 = FindCgroupV2WithControllers(root);
  if (!v2.empty()) {
    cg.version_ = CgroupVersion::kV2;
    cg.memory_dir_ = cg.cpu_dir_ = cg.pids_dir_ = find(v2);
  } else {
    cg.memory_dir_ = find(root + "/memory");
    cg.cpu_dir_ = find(root + "/cpu");
    cg.pids_dir_ = find(root + "/pids");
  }
  if (!cg.valid()) return std::nullopt;
  return cg;
}

Cgroup::Cgroup(Cgroup&& o) noexcept
    : name_(std::move(o.name_)),
      version_(o.version_),
      dirs_(std::exchange(o.dirs_, {})),
      memory_dir_(std::move(o.memory_dir_)),
      cpu_dir_(std::move(o.cpu_dir_)),
      pids_dir_(std::move(o.pids_dir_)) {}

Cgroup& Cgroup::operator=(Cgroup&& o) noexcept {
  if (this != &o) {
    try {
      Remove();
    } catch (const std::exception&) {
    }
    name_ = std::move(o.name_);
    version_ = o.version_;
    dirs_ = std::exchange(o.dirs_, {});
    memory_dir_ = std::move(o.memory_dir_);
    cpu_dir_ = std::move(o.cpu_dir_);
    pids_dir_ = std::move(o.pids_dir_);
  }
  return *this;
}

Cgroup::~Cgroup() {
  try {
    Remove();
  } catch (const std::exception&) {
    // A destructor cannot report; the kernel-test fixture's leak check will.
  }
}

std::vector<std::string> Cgroup::ProcsFiles() const {
  std::vector<std::string> out;
  for (const auto& d : dirs_) out.push_back(d + "/cgroup.procs");
  return out;
}

void Cgroup::Apply(const ResourceLimits& limits, bool fresh) {
  CpuQuota cpu = MilliCpuToQuota(limits.cpu_millicores);
  bool cpu_limited = cpu.quota_us > 0, pids_limited = limits.pids_max > 0;
  if (version_ == CgroupVersion::kV2) {
    if (!fresh || limits.memory_bytes > 0) {
      WriteFile(memory_dir_ + "/memory.max",
                limits.memory_bytes > 0 ? std::to_string(limits.memory_bytes) : "max");
    }
    if (limits.memory_bytes > 0 && Exists(memory_dir_ + "/memory.swap.max")) {
      WriteFile(memory_dir_ + "/memory.swap.max", "0");  // a limit that swap cannot dodge
    }
    if (!fresh || cpu_limited) {
      WriteFile(cpu_dir_ + "/cpu.max",
                (cpu_limited ? std::to_string(cpu.quota_us) : std::string("max")) + " " +
                    std::to_string(cpu.period_us));
    }
    if (!fresh || pids_limited) {
      WriteFile(pids_dir_ + "/pids.max", pids_limited ? std::to_string(limits.pids_max) : "max");
    }
    return;
  }
  if (limits.memory_bytes > 0) {
    WriteFile(memory_dir_ + "/memory.limit_in_bytes", std::to_string(limits.memory_bytes));
    // memory+swap no higher than memory: the limit cannot be dodged by swapping.
    if (Exists(memory_dir_ + "/memory.memsw.limit_in_bytes")) {
      WriteFile(memory_dir_ + "/memory.memsw.limit_in_bytes", std::to_string(limits.memory_bytes));
    }
  }
  if (!fresh || cpu_limited) {
    WriteFile(cpu_dir_ + "/cpu.cfs_period_us", std::to_string(cpu.period_us));
    WriteFile(cpu_dir_ + "/cpu.cfs_quota_us", std::to_string(cpu.quota_us));
  }
  if (!fresh || pids_limited) {
    WriteFile(pids_dir_ + "/pids.max", pids_limited ? std::to_string(limits.pids_max) : "max");
  }
}

void Cgroup::AddProcess(pid_t pid) {
  for (const auto& f : ProcsFiles()) WriteFile(f, std::to_string(pid));
}

std::vector<pid_t> Cgroup::Pids() const {
  if (memory_dir_.empty()) return {};
  return ReadPids(memory_dir_ + "/cgroup.procs");
}

uint64_t Cgroup::OomKillCount() const {
  if (version_ == CgroupVersion::kV2) {
    return KeyedValue(ReadFile(memory_dir_ + "/memory.events"), "oom_kill");
  }
  return KeyedValue(ReadFile(memory_dir_ + "/memory.oom_control"), "oom_kill");
}

uint64_t Cgroup::MemoryLimitHits() const {
  if (version_ == CgroupVersion::kV2) {
    return KeyedValue(ReadFile(memory_dir_ + "/memory.events"), "max");
  }
  return std::stoull(ReadFile(memory_dir_ + "/memory.failcnt"));
}

void Cgroup::Remove() {
  if (dirs_.empty()) return;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  auto pause = std::chrono::milliseconds(1);
  std::vector<std::string> left = dirs_;
  while (true) {
    // Kill before each rmdir attempt: a process may fork until it is killed.
    for (const auto& d : left) {
      for (pid_t p : ReadPids(d + "/cgroup.procs")) ::kill(p, SIGKILL);
    }
    std::vector<std::string> still;
    int last_err = 0;
    for (const auto& d : left) {
      if (::rmdir(d.c_str()) == 0 || errno == ENOENT) continue;
      last_err = errno;
      // A cgroup inside it (not one kin makes) keeps it however long we wait.
      if (last_err == EBUSY) {
        if (std::string child = FirstChildDir(d); !child.empty()) {
          dirs_ = left;
          throw ErrnoError(last_err, "remove cgroup " + d + " (the cgroup " + child +
                                         " inside it keeps it)");
        }
      }
      still.push_back(d);
    }
    left = std::move(still);
    if (left.empty()) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      dirs_ = left;
      throw ErrnoError(last_err, "remove cgroup " + left.front());
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
  dirs_.clear();
}

}  // namespace kin
