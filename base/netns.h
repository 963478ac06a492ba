// Network namespaces: handles, named (persisted) namespaces, and entering one.
//
// Netns       an open handle (fd) on a network namespace. Never copyable.
// NamedNetns  a namespace persisted as /run/netns/NAME, the way `ip netns add`
//             makes it, so `ip netns exec NAME ...` works. Owns it: the
//             destructor removes the bind mount and the file unless Release()d.
// NetnsEnter  enters a namespace on the calling thread and returns to the
//             previous one on destruction (setns is per thread).
// RunInNetns  runs a function on a short-lived thread inside a namespace, for
//             callers that must not change their own thread's namespace.
//
// Thread-safety: handles are thread-compatible; the free functions are
// thread-safe.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "base/fd.h"

namespace kin {

inline constexpr const char* kNetnsRunDir = "/run/netns";

class Netns {
 public:
  Netns() = default;
  explicit Netns(UniqueFd fd) : fd_(std::move(fd)) {}

  static Netns Open(const std::string& name);  // /run/netns/NAME
  static Netns OfPid(pid_t pid);               // /proc/PID/ns/net
  static Netns OpenPath(const std::string& path);  // any nsfs path, e.g. /proc/thread-self/ns/net
  static Netns Current();                      // the calling thread's

  int fd() const { return fd_.get(); }
  bool valid() const { return fd_.valid(); }
  // The namespace's inode number: equal inodes mean the same namespace.
  unsigned long inode() const;

 private:
  UniqueFd fd_;
};

class NamedNetns {
 public:
  // Creates /run/netns/NAME holding a new, empty network namespace (only lo,
  // down). Throws AlreadyExists when the name is taken.
  static NamedNetns Create(const std::string& name);
  // Adopts an existing /run/netns/NAME (it will be removed on destruction).
  static NamedNetns Adopt(const std::string& name);

  NamedNetns(NamedNetns&&) noexcept = default;
  NamedNetns& operator=(NamedNetns&& o) noexcept;
  NamedNetns(const NamedNetns&) = delete;
  NamedNetns& operator=(const NamedNetns&) = delete;
  ~NamedNetns();

  const std::string& name() const { return name_; }
  const Netns& ns() const { return ns_; }
  // Keeps the namespace on the machine after this object dies.
  void Release() { name_.clear(); }

 private:
  NamedNetns(std::string name, Netns ns) : name_(std::move(name)), ns_(std::move(ns)) {}
  std::string name_;
  Netns ns_;
};

// Removes /run/netns/NAME (unmount + unlink). Missing is not an error.
void DeleteNamedNetns(const std::string& name);
// Names under /run/netns, optionally only those starting with `prefix`.
std::vector<std::string> ListNamedNetns(const std::string& prefix = "");

class NetnsEnter {
 public:
  explicit NetnsEnter(const Netns& target);
  NetnsEnter(const NetnsEnter&) = delete;
  NetnsEnter& operator=(const NetnsEnter&) = delete;
  ~NetnsEnter();

 private:
  Netns previous_;
};

// Runs fn() on a new thread inside `target` and returns when it finishes;
// an exception thrown by fn is rethrown in the caller.
void RunInNetns(const Netns& target, const std::function<void()>& fn);

}  // namespace kin
