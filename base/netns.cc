#include "base/netns.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <cerrno>
#include <exception>
#include <mutex>
#include <thread>

#include "base/error.h"

namespace kin {

namespace {

std::string PathFor(const std::string& name) { return std::string(kNetnsRunDir) + "/" + name; }

void CheckName(const std::string& name) {
  if (name.empty() || name.size() > 200 || name.find('/') != std::string::npos || name == "." ||
      name == "..") {
    throw Error::BadRequest("invalid network namespace name \"" + name + "\"");
  }
}

// Makes /run/netns a shared mount point, as iproute2 does, so that netns
// bind mounts made here propagate to other mount namespaces (and `ip netns`
// in them sees the same files).
void EnsureRunDir() {
  static std::once_flag once;
  static int setup_errno = 0;
  std::call_once(once, [] {
    if (::mkdir(kNetnsRunDir, 0755) < 0 && errno != EEXIST) {
      setup_errno = errno;
      return;
    }
    if (::mount("", kNetnsRunDir, "none", MS_SHARED | MS_REC, nullptr) == 0) return;
    if (errno != EINVAL) return;  // not a mount point yet: bind it onto itself
    if (::mount(kNetnsRunDir, kNetnsRunDir, "none", MS_BIND | MS_REC, nullptr) < 0) {
      setup_errno = errno;
      return;
    }
    ::mount("", kNetnsRunDir, "none", MS_SHARED | MS_REC, nullptr);
  });
  if (setup_errno != 0) throw ErrnoError(setup_errno, std::string("prepare ") + kNetnsRunDir);
}

}  // namespace

Netns Netns::Open(const std::string& name) {
  CheckName(name);
  int fd = ::open(PathFor(name).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw ErrnoError(errno, "open network namespace `" + name + "`");
  return Netns(UniqueFd(fd));
}

Netns Netns::OpenPath(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw ErrnoError(errno, "open network namespace " + path);
  return Netns(UniqueFd(fd));
}

Netns Netns::OfPid(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/ns/net";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw ErrnoError(errno, "open " + path);
  return Netns(UniqueFd(fd));
}

Netns Netns::Current() {
  std::string path = "/proc/self/task/" + std::to_string(::syscall(SYS_gettid)) + "/ns/net";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw ErrnoError(errno, "open " + path);
  return Netns(UniqueFd(fd));
}

unsigned long Netns::inode() const {
  struct stat st {};
  CheckSys(::fstat(fd_.get(), &st), "stat network namespace handle");
  return st.st_ino;
}

NamedNetns NamedNetns::Create(const std::string& name) {
  CheckName(name);
  EnsureRunDir();
  const std::string path = PathFor(name);
  int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (fd < 0) throw ErrnoError(errno, "create network namespace `" + name + "`");
  ::close(fd);

  // unshare() on a throw-away thread so the caller's thread keeps its
  // namespace; the bind mount keeps the new namespace alive after the thread.
  int err = 0;
  std::string step;
  std::thread t([&] {
    if (::unshare(CLONE_NEWNET) < 0) {
      err = errno;
      step = "unshare";
      return;
    }
    std::string self = "/proc/self/task/" + std::to_string(::syscall(SYS_gettid)) + "/ns/net";
    if (::mount(self.c_str(), path.c_str(), "none", MS_BIND, nullptr) < 0) {
      err = errno;
      step = "bind mount";
    }
  });
  t.join();
  if (err != 0) {
    ::unlink(path.c_str());
    throw ErrnoError(err, "create network namespace `" + name + "` (" + step + ")");
  }
  try {
    return NamedNetns(name, Netns::Open(name));
  } catch (...) {
    DeleteNamedNetns(name);
    throw;
  }
}

NamedNetns NamedNetns::Adopt(const std::string& name) {
  return NamedNetns(name, Netns::Open(name));
}

NamedNetns& NamedNetns::operator=(NamedNetns&& o) noexcept {
  if (this != &o) {
    if (!name_.empty()) {
      try {
        DeleteNamedNetns(name_);
      } catch (...) {
      }
    }
    name_ = std::exchange(o.name_, std::string());
    ns_ = std::move(o.ns_);
  }
  return *this;
}

NamedNetns::~NamedNetns() {
  if (name_.empty()) return;
  ns_ = Netns();
  try {
    DeleteNamedNetns(name_);
  } catch (...) {
    // Destructors must not throw; a leftover is reported by the tests' leak check.
  }
}

void DeleteNamedNetns(const std::string& name) {
  CheckName(name);
  const std::string path = PathFor(name);
  if (::umount2(path.c_str(), MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT) {
    throw ErrnoError(errno, "unmount network namespace `" + name + "`");
  }
  if (::unlink(path.c_str()) < 0 && errno != ENOENT) {
    throw ErrnoError(errno, "remove network namespace `" + name + "`");
  }
}

std::vector<std::string> ListNamedNetns(const std::string& prefix) {
  std::vector<std::string> out;
  DIR* d = ::opendir(kNetnsRunDir);
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    if (n.compare(0, prefix.size(), prefix) == 0) out.push_back(n);
  }
  ::closedir(d);
  return out;
}

NetnsEnter::NetnsEnter(const Netns& target) : previous_(Netns::Current()) {
  CheckSys(::setns(target.fd(), CLONE_NEWNET), "enter network namespace");
}

NetnsEnter::~NetnsEnter() {
  // Failing to return would leave the thread in the wrong namespace, which is
  // worse than dying loudly.
  if (::setns(previous_.fd(), CLONE_NEWNET) < 0) std::terminate();
}

void RunInNetns(const Netns& target, const std::function<void()>& fn) {
  std::exception_ptr failure;
  std::thread t([&] {
    try {
      CheckSys(::setns(target.fd(), CLONE_NEWNET), "enter network namespace");
      fn();
    } catch (...) {
      failure = std::current_exception();
    }
  });
  t.join();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace kin
