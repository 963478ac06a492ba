#include "base/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "base/error.h"
#include "base/fd.h"

namespace kin {

void WriteFileAtomic(const std::string& path, std::string_view content, mode_t mode, bool sync) {
  std::string tmp = path + ".tmp-XXXXXX";
  // mkstemp creates the file 0600: never readable by others, even briefly.
  UniqueFd fd(::mkostemp(tmp.data(), O_CLOEXEC));
  if (!fd) throw ErrnoError(errno, "create a temporary file for " + path);
  auto fail = [&](const std::string& context) {
    int e = errno;
    ::unlink(tmp.c_str());
    return ErrnoError(e, context);
  };
  if (::fchmod(fd.get(), mode) != 0) throw fail("chmod " + tmp);
  while (!content.empty()) {
    ssize_t w = ::write(fd.get(), content.data(), content.size());
    if (w < 0) {
      if (errno == EINTR) continue;
      throw fail("write " + tmp);
    }
    content.remove_prefix(w);
  }
  if (sync && ::fsync(fd.get()) != 0) throw fail("fsync " + tmp);
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) throw fail("rename " + tmp + " to " + path);
}

std::optional<std::string> ReadFileIfExists(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return std::nullopt;
    throw ErrnoError(errno, "open " + path);
  }
  std::string out;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw ErrnoError(errno, "read " + path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace kin
