#include "testing/kernel_fixture.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "base/netns.h"

namespace kin::testing {

namespace {

bool StartsWith(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

std::vector<std::string> Lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

// Links of the host namespace: "ip -o link" prints "N: name@peer: <...".
std::vector<std::string> HostLinks(const std::string& prefix) {
  std::vector<std::string> out;
  CommandResult r = RunCommand({"ip", "-o", "link", "show"}, std::chrono::seconds(10));
  for (const auto& line : Lines(r.out)) {
    size_t a = line.find(": ");
    if (a == std::string::npos) continue;
    size_t b = line.find_first_of(":@", a + 2);
    std::string name = line.substr(a + 2, b - a - 2);
    if (StartsWith(name, prefix)) out.push_back(name);
  }
  return out;
}

// nft tables of the host namespace: "table <family> <name>".
std::vector<std::pair<std::string, std::string>> HostNftTables(const std::string& prefix) {
  std::vector<std::pair<std::string, std::string>> out;
  CommandResult r;
  try {
    r = RunCommand({"nft", "list", "tables"}, std::chrono::seconds(10));
  } catch (const std::exception&) {
    return out;  // nft not installed: nothing of ours can exist either
  }
  for (const auto& line : Lines(r.out)) {
    std::istringstream in(line);
    std::string word, family, name;
    in >> word >> family >> name;
    if (word == "table" && StartsWith(name, prefix)) out.emplace_back(family, name);
  }
  return out;
}

// Mount points whose path contains the prefix, deepest first.
std::vector<std::string> Mounts(const std::string& prefix) {
  std::vector<std::string> out;
  std::ifstream in("/proc/self/mounts");
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string dev, mnt;
    fields >> dev >> mnt;
    if (mnt.find("/" + prefix) != std::string::npos) out.push_back(mnt);
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.size() > b.size(); });
  return out;
}

std::vector<std::string> Cgroups(const std::string& prefix) {
  std::vector<std::string> out;
  std::function<void(const std::string&, int)> walk = [&](const std::string& dir, int depth) {
    if (depth > 4) return;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (e->d_type != DT_DIR || n == "." || n == "..") continue;
      std::string path = dir + "/" + n;
      if (StartsWith(n, prefix)) {
        out.push_back(path);
      } else {
        walk(path, depth + 1);
      }
    }
    ::closedir(d);
  };
  walk("/sys/fs/cgroup", 0);
  return out;
}

// Processes whose command line mentions the prefix.
std::vector<pid_t> Processes(const std::string& prefix) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return out;
  pid_t self = ::getpid();
  while (dirent* e = ::readdir(d)) {
    pid_t pid = std::atoi(e->d_name);
    if (pid <= 0 || pid == self) continue;
    // Raw reads: a process may exit while we read (ESRCH), which is no error here.
    int fd = ::open(("/proc/" + std::string(e->d_name) + "/cmdline").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    std::string cmd;
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) cmd.append(buf, static_cast<size_t>(n));
    ::close(fd);
    if (cmd.find(prefix) != std::string::npos) out.push_back(pid);
  }
  ::closedir(d);
  return out;
}

}  // namespace

std::string UniquePrefix(const std::string& lead) {
  static std::atomic<unsigned> counter{0};
  std::random_device rd;
  unsigned v = (rd() ^ (static_cast<unsigned>(::getpid()) << 8) ^ counter++) & 0xfffff;
  char buf[8];
  snprintf(buf, sizeof buf, "%05x", v);
  return lead + buf;
}

std::vector<std::string> KernelObjectsWithPrefix(const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& p : Processes(prefix)) out.push_back("process " + std::to_string(p));
  for (const auto& m : Mounts(prefix)) out.push_back("mount " + m);
  for (const auto& n : ListNamedNetns(prefix)) out.push_back("netns " + n);
  for (const auto& l : HostLinks(prefix)) out.push_back("link " + l);
  for (const auto& [f, t] : HostNftTables(prefix)) out.push_back("nft table " + f + " " + t);
  for (const auto& c : Cgroups(prefix)) out.push_back("cgroup " + c);
  return out;
}

void RemoveKernelObjectsWithPrefix(const std::string& prefix) {
  for (pid_t p : Processes(prefix)) ::kill(p, SIGKILL);
  Eventually([&] { return Processes(prefix).empty(); }, std::chrono::seconds(5));
  for (const auto& m : Mounts(prefix)) ::umount2(m.c_str(), MNT_DETACH);
  for (const auto& n : ListNamedNetns(prefix)) {
    try {
      DeleteNamedNetns(n);
    } catch (const std::exception&) {
    }
  }
  for (const auto& l : HostLinks(prefix)) {
    try {
      RunCommand({"ip", "link", "del", l}, std::chrono::seconds(10));
    } catch (const std::exception&) {
    }
  }
  for (const auto& [f, t] : HostNftTables(prefix)) {
    try {
      RunCommand({"nft", "delete", "table", f, t}, std::chrono::seconds(10));
    } catch (const std::exception&) {
    }
  }
  auto cgroups = Cgroups(prefix);
  std::sort(cgroups.begin(), cgroups.end(), [](auto& a, auto& b) { return a.size() > b.size(); });
  for (const auto& c : cgroups) ::rmdir(c.c_str());
}

bool RequireRoot() {
  if (::geteuid() == 0) return true;
  const char* ci = std::getenv("CI");
  if (ci != nullptr && std::string(ci) == "true") {
    ADD_FAILURE() << "kernel and e2e tests need root; in CI (CI=true) they must not skip";
  }
  return false;
}

void KernelTest::SetUp() {
  if (!RequireRoot()) GTEST_SKIP() << "needs root (real namespaces, links, nftables)";
  prefix_ = UniquePrefix();
}

void KernelTest::TearDown() {
  if (prefix_.empty()) return;
  for (auto& p : processes_) {
    if (p.running()) {
      p.Signal(SIGKILL);
      p.Wait();
    }
  }
  processes_.clear();
  RemoveKernelObjectsWithPrefix(prefix_);
  auto left = KernelObjectsWithPrefix(prefix_);
  std::string list;
  for (const auto& l : left) list += "\n  " + l;
  EXPECT_TRUE(left.empty()) << "kernel objects left behind with prefix " << prefix_ << ":" << list;
}

std::string KernelTest::Name(const std::string& suffix, size_t max_len) const {
  std::string n = prefix_ + suffix;
  EXPECT_LE(n.size(), max_len) << "name " << n << " is too long";
  return n;
}

bool Eventually(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(1);
  while (true) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
}

}  // namespace kin::testing
