#include "runtime/pod_namespaces.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <sys/syscall.h>

#include <cerrno>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "base/error.h"

namespace kin {

namespace {

// Unmounts the namespace held at `file` and removes the file; what is
// missing is fine.
void RemovePin(const std::string& file) {
  if (::umount2(file.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0 && errno != EINVAL &&
      errno != ENOENT) {
    throw ErrnoError(errno, "unmount " + file);
  }
  if (::unlink(file.c_str()) != 0 && errno != ENOENT) throw ErrnoError(errno, "remove " + file);
}

// The file is an nsfs mount: it holds a namespace.
bool HoldsNamespace(const std::string& file) {
  struct statfs st {};
  return ::statfs(file.c_str(), &st) == 0 && st.f_type == NSFS_MAGIC;
}

}  // namespace

PodNamespacePaths PodNamespacesIn(const std::string& dir) { return {dir + "/uts", dir + "/ipc"}; }

void CreatePodNamespaces(const std::string& dir, const std::string& hostname) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw ErrnoError(ec.value(), "create pod namespace directory " + dir);
  PodNamespacePaths paths = PodNamespacesIn(dir);
  for (const std::string* file : {&paths.uts, &paths.ipc}) {
    int fd = ::open(file->c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0444);
    if (fd < 0) throw ErrnoError(errno, "create " + *file);
    ::close(fd);
  }
  // unshare() on a throw-away thread, so the caller's thread keeps its
  // namespaces; the bind mounts keep the new ones alive after the thread.
  int err = 0;
  std::string step;
  std::thread t([&] {
    auto fail = [&](std::string what) {
      err = errno;
      step = std::move(what);
    };
    if (::unshare(CLONE_NEWUTS | CLONE_NEWIPC) < 0) return fail("unshare");
    if (::sethostname(hostname.data(), hostname.size()) < 0) {
      return fail("set hostname `" + hostname + "`");
    }
    if (::mount("/proc/thread-self/ns/uts", paths.uts.c_str(), nullptr, MS_BIND, nullptr) < 0) {
      return fail("bind mount " + paths.uts);
    }
    if (::mount("/proc/thread-self/ns/ipc", paths.ipc.c_str(), nullptr, MS_BIND, nullptr) < 0) {
      return fail("bind mount " + paths.ipc);
    }
  });
  t.join();
  if (err != 0) {
    RemovePodNamespaces(dir);
    throw ErrnoError(err, "create the pod's UTS and IPC namespaces in " + dir + " (" + step + ")");
  }
}

bool PodNamespacesExist(const std::string& dir) {
  PodNamespacePaths paths = PodNamespacesIn(dir);
  return HoldsNamespace(paths.uts) && HoldsNamespace(paths.ipc);
}

void RemovePodNamespaces(const std::string& dir) {
  PodNamespacePaths paths = PodNamespacesIn(dir);
  for (const std::string* file : {&paths.uts, &paths.ipc}) RemovePin(*file);
}

void EnsureOwnTmpfs(const std::string& dir, Propagation propagation) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw ErrnoError(ec.value(), "create " + dir);
  unsigned long flag = propagation == Propagation::kShared ? MS_SHARED : MS_PRIVATE;
  const char* what = propagation == Propagation::kShared ? " a shared mount" : " a private mount";
  // Changing the propagation succeeds only on a mount point: then DIR is
  // mounted already (by an earlier kin serve: keep what it holds).
  if (::mount(nullptr, dir.c_str(), nullptr, MS_REC | flag, nullptr) == 0) return;
  if (errno != EINVAL) throw ErrnoError(errno, "make " + dir + what);
  if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, "mode=0755") != 0) {
    throw ErrnoError(errno, "mount a tmpfs on " + dir);
  }
  if (::mount(nullptr, dir.c_str(), nullptr, MS_REC | flag, nullptr) != 0) {
    int e = errno;
    ::umount2(dir.c_str(), MNT_DETACH);
    throw ErrnoError(e, "make " + dir + what);
  }
}

void RemoveOwnMount(const std::string& dir) {
  // Stacked binds (a crash between two runs) come off one at a time.
  for (int round = 0; round < 8; ++round) {
    if (::umount2(dir.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0) {
      if (errno == EINVAL || errno == ENOENT) return;
      throw ErrnoError(errno, "unmount " + dir);
    }
  }
}

void CreateMountTemplate(const std::string& pin, const std::vector<std::string>& detach) {
  int fd = ::open(pin.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0444);
  if (fd < 0) throw ErrnoError(errno, "create " + pin);
  ::close(fd);
  // A thread of ours makes the namespace and waits while this one, still in
  // the host's namespace, pins it: a mount namespace can only be pinned from
  // outside (an older namespace).
  std::mutex mu;
  std::condition_variable cv;
  bool made = false, pinned = false;
  int err = 0;
  std::string step;
  pid_t tid = 0;
  std::thread t([&] {
    auto fail = [&](std::string what) {
      err = errno;
      step = std::move(what);
    };
    [&] {
      if (::unshare(CLONE_NEWNS) < 0) return fail("unshare");
      if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) < 0) {
        return fail("make / rslave");
      }
      for (const auto& d : detach) {
        if (::umount2(d.c_str(), MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT) {
          return fail("detach " + d);
        }
      }
    }();
    std::unique_lock<std::mutex> l(mu);
    tid = static_cast<pid_t>(::syscall(SYS_gettid));
    made = true;
    cv.notify_all();
    cv.wait(l, [&] { return pinned; });
  });
  {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return made; });
    if (err == 0) {
      std::string ns = "/proc/self/task/" + std::to_string(tid) + "/ns/mnt";
      if (::mount(ns.c_str(), pin.c_str(), nullptr, MS_BIND, nullptr) < 0) {
        err = errno;
        step = "bind mount " + pin;
      }
    }
    pinned = true;
    cv.notify_all();
  }
  t.join();
  if (err != 0) {
    ::unlink(pin.c_str());
    throw ErrnoError(err, "create the node's mount template " + pin + " (" + step + ")");
  }
}

bool MountTemplateExists(const std::string& pin) { return HoldsNamespace(pin); }

void RemoveMountTemplate(const std::string& pin) { RemovePin(pin); }

}  // namespace kin
