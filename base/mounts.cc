#include "base/mounts.h"

#include <sys/mount.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>

#include "base/error.h"

namespace kin {

namespace {

// /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool ok = true;
      for (size_t k = 1; k <= 3; ++k) {
        if (i + k >= s.size() || s[i + k] < '0' || s[i + k] > '7') {
          ok = false;
          break;
        }
        v = v * 8 + (s[i + k] - '0');
      }
      if (ok) {
        out += static_cast<char>(v);
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

bool AtOrUnder(const std::string& path, const std::string& dir) {
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         path[dir.size()] == '/');
}

}  // namespace

std::vector<std::string> MountPoints() {
  std::vector<std::string> out;
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::string id, parent, devno, root, mnt;
    f >> id >> parent >> devno >> root >> mnt;
    out.push_back(Unescape(mnt));
  }
  return out;
}

std::vector<std::string> MountPointsUnder(const std::string& dir) {
  std::vector<std::string> out;
  for (auto& m : MountPoints()) {
    if (AtOrUnder(m, dir)) out.push_back(std::move(m));
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return out;
}

void UnmountAllUnder(const std::string& dir) {
  // A path can be mounted more than once (stacked): go again until clear.
  for (int round = 0; round < 16; ++round) {
    std::vector<std::string> mounts = MountPointsUnder(dir);
    if (mounts.empty()) return;
    for (const auto& m : mounts) {
      if (::umount2(m.c_str(), UMOUNT_NOFOLLOW) == 0) continue;
      if (errno == EINVAL || errno == ENOENT) continue;  // already gone
      if (errno != EBUSY || ::umount2(m.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0) {
        if (errno == EINVAL || errno == ENOENT) continue;
        throw ErrnoError(errno, "unmount " + m);
      }
    }
  }
  auto left = MountPointsUnder(dir);
  if (!left.empty()) throw Error::Internal("unmount " + left.front() + ": still mounted");
}

}  // namespace kin
