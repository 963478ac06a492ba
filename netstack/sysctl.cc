#include "netstack/sysctl.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>

#include "base/error.h"
#include "base/log.h"
#include "base/process.h"

namespace kin::netstack {

namespace {

std::string Where(const std::string& label) {
  return label.empty() ? "" : " in netns `" + label + "`";
}

// br_netfilter registers net.bridge.* (per namespace). Built into some
// kernels, a module on others; modprobe is tried once per process.
void EnsureBrNetfilter() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct stat st {};
    if (::stat("/proc/sys/net/bridge", &st) == 0) return;
    try {
      CommandResult r = RunCommand({"modprobe", "br_netfilter"}, std::chrono::seconds(10));
      if (!r.status.success()) log::Warn("modprobe br_netfilter: {}", r.err);
    } catch (const std::exception& e) {
      log::Warn("modprobe br_netfilter: {}", e.what());
    }
  });
}

void WriteHere(const Sysctl& s, const std::string& label) {
  const std::string path = SysctlPath(s.key);
  const std::string context = "set sysctl " + s.key + "=" + s.value + Where(label);
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT && s.key.rfind("net.bridge", 0) == 0) {
    EnsureBrNetfilter();
    fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  }
  if (fd < 0) throw ErrnoError(errno, context);
  ssize_t n;
  do {
    n = ::write(fd, s.value.data(), s.value.size());
  } while (n < 0 && errno == EINTR);
  int err = errno;
  ::close(fd);
  if (n < 0) throw ErrnoError(err, context);
  if (static_cast<size_t>(n) != s.value.size()) throw Error::Internal(context + ": short write");
}

}  // namespace

std::string SysctlPath(const std::string& key) {
  std::string rel = key;
  if (rel.find('/') == std::string::npos) {
    for (char& c : rel) {
      if (c == '.') c = '/';
    }
  }
  bool ok = rel.rfind("net/", 0) == 0 && rel.find("//") == std::string::npos && rel.back() != '/' &&
            rel.find("/../") == std::string::npos && rel.find("/./") == std::string::npos &&
            rel.substr(rel.size() - 3) != "/..";
  if (!ok) {
    throw Error::Invalid("invalid sysctl key \"" + key +
                         "\": must name a net.* setting, e.g. net.ipv4.ip_forward");
  }
  return "/proc/sys/" + rel;
}

void WriteSysctls(const Netns& ns, const std::vector<Sysctl>& sysctls, const std::string& label) {
  for (const auto& s : sysctls) SysctlPath(s.key);  // all valid before any is written
  NetnsEnter enter(ns);
  for (const auto& s : sysctls) WriteHere(s, label);
}

void WriteSysctl(const Netns& ns, const std::string& key, const std::string& value,
                 const std::string& label) {
  WriteSysctls(ns, {{key, value}}, label);
}

std::string ReadSysctl(const Netns& ns, const std::string& key, const std::string& label) {
  const std::string path = SysctlPath(key);
  NetnsEnter enter(ns);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw ErrnoError(errno, "read sysctl " + key + Where(label));
  std::string out;
  char buf[256];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      throw ErrnoError(err, "read sysctl " + key + Where(label));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace kin::netstack
