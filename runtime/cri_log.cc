#include "runtime/cri_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <deque>
#include <thread>
#include <tuple>
#include <vector>

#include "base/error.h"
#include "client/object.h"

namespace kin {
namespace {

using std::chrono::system_clock;

constexpr auto kFollowPollInterval = std::chrono::milliseconds(100);

std::string Format(system_clock::time_point t, bool fixed) {
  using namespace std::chrono;
  auto ns = duration_cast<nanoseconds>(t.time_since_epoch());
  auto days = floor<std::chrono::days>(ns);
  year_month_day ymd{sys_days{days}};
  hh_mm_ss hms{ns - days};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  std::string out = buf;
  long long frac = hms.subseconds().count();
  std::snprintf(buf, sizeof buf, "%09lld", frac);
  std::string digits = buf;
  if (!fixed) {
    while (!digits.empty() && digits.back() == '0') digits.pop_back();
  }
  if (!digits.empty()) out += "." + digits;
  return out + "Z";
}

void WriteAllFd(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw ErrnoError(errno, "write log `" + path + "`");
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
}

// Complete lines of one file, read in chunks; a last line without its
// newline (a record being written) stays buffered until it is complete.
class LineReader {
 public:
  explicit LineReader(UniqueFd fd) : fd_(std::move(fd)) {}

  const UniqueFd& fd() const { return fd_; }
  void SeekTo(off_t offset) {
    ::lseek(fd_.get(), offset, SEEK_SET);
    buf_.clear();
    pos_ = 0;
    buf_offset_ = offset;
  }
  // The next complete line (without '\n') and its offset, or false at EOF.
  bool Next(std::string_view* line, off_t* offset) {
    for (;;) {
      size_t nl = buf_.find('\n', pos_);
      if (nl != std::string::npos) {
        *line = std::string_view(buf_).substr(pos_, nl - pos_);
        *offset = buf_offset_ + static_cast<off_t>(pos_);
        pos_ = nl + 1;
        return true;
      }
      // Drop what was consumed; keep the unfinished tail.
      buf_offset_ += static_cast<off_t>(pos_);
      buf_.erase(0, pos_);
      pos_ = 0;
      char chunk[64 * 1024];
      ssize_t n = ::read(fd_.get(), chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }
  // Just past the last complete line returned.
  off_t end_offset() const { return buf_offset_ + static_cast<off_t>(pos_); }

 private:
  UniqueFd fd_;
  std::string buf_;
  size_t pos_ = 0;
  off_t buf_offset_ = 0;  // file offset of buf_[0]
};

// Renders records as kubelet's logWriter does.
class LogEmitter {
 public:
  LogEmitter(const LogReadOptions& opts, const std::function<bool(std::string_view)>& sink)
      : opts_(opts), sink_(sink) {}

  // False when output must stop (limit reached or the sink is gone).
  bool Emit(const CriLogRecord& r) {
    if (opts_.since_time && r.time < *opts_.since_time) return true;
    std::string out;
    if (opts_.timestamps && at_line_start_) out = FormatRfc3339NanoFixed(r.time) + " ";
    out.append(r.content);
    if (!r.partial) out += '\n';
    at_line_start_ = !r.partial;
    bool cut = false;
    if (opts_.limit_bytes) {
      int64_t left = *opts_.limit_bytes - written_;
      if (left <= 0) return false;
      if (static_cast<int64_t>(out.size()) >= left) {
        out.resize(static_cast<size_t>(left));
        cut = true;
      }
    }
    written_ += static_cast<int64_t>(out.size());
    if (!out.empty() && !sink_(out)) return false;
    return !cut;
  }

 private:
  const LogReadOptions& opts_;
  const std::function<bool(std::string_view)>& sink_;
  bool at_line_start_ = true;
  int64_t written_ = 0;
};

// Emits every complete record up to EOF; false when output must stop.
bool Drain(LineReader& reader, LogEmitter& emitter) {
  std::string_view line;
  off_t offset;
  while (reader.Next(&line, &offset)) {
    auto rec = ParseCriLogLine(line);
    if (rec && !emitter.Emit(*rec)) return false;
  }
  return true;
}

std::optional<std::pair<dev_t, ino_t>> FileId(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return std::nullopt;
  return std::make_pair(st.st_dev, st.st_ino);
}

std::optional<std::pair<dev_t, ino_t>> PathId(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return std::make_pair(st.st_dev, st.st_ino);
}

UniqueFd OpenForRead(const std::string& path) {
  return UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
}

}  // namespace

std::string FormatRfc3339Nano(system_clock::time_point t) { return Format(t, false); }
std::string FormatRfc3339NanoFixed(system_clock::time_point t) { return Format(t, true); }

std::optional<CriLogRecord> ParseCriLogLine(std::string_view line) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  size_t a = line.find(' ');
  if (a == std::string_view::npos) return std::nullopt;
  auto time = object::ParseRfc3339(line.substr(0, a));
  if (!time) return std::nullopt;
  size_t b = line.find(' ', a + 1);
  if (b == std::string_view::npos) return std::nullopt;
  CriLogRecord r;
  r.time = *time;
  r.stream = line.substr(a + 1, b - a - 1);
  if (r.stream != "stdout" && r.stream != "stderr") return std::nullopt;
  // The tag field may carry more ':'-separated tags; the first is P or F.
  size_t c = line.find(' ', b + 1);
  std::string_view tags = line.substr(b + 1, c == std::string_view::npos ? c : c - b - 1);
  std::string_view tag = tags.substr(0, tags.find(':'));
  if (tag == "P") {
    r.partial = true;
  } else if (tag != "F") {
    return std::nullopt;
  }
  r.content = c == std::string_view::npos ? std::string_view() : line.substr(c + 1);
  return r;
}

CriLogWriter::CriLogWriter(std::string path, int64_t max_bytes, int max_files)
    : path_(std::move(path)), max_bytes_(max_bytes), max_files_(max_files < 1 ? 1 : max_files) {
  Open(false);
}

CriLogWriter::~CriLogWriter() {
  try {
    Flush();
  } catch (const std::exception&) {
    // A destructor cannot report a full disk; the lines are lost either way.
  }
}

void CriLogWriter::Open(bool truncate) {
  int flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (truncate ? O_TRUNC : 0);
  UniqueFd fd(::open(path_.c_str(), flags, 0640));
  if (!fd) throw ErrnoError(errno, "open log `" + path_ + "`");
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) throw ErrnoError(errno, "stat log `" + path_ + "`");
  fd_ = std::move(fd);
  size_ = st.st_size;
}

void CriLogWriter::Rotate() {
  // A new inode for `path` every time (never truncating in place), so a
  // follower holding the old file notices the rotation.
  if (max_files_ <= 1) {
    if (::unlink(path_.c_str()) != 0 && errno != ENOENT) {
      throw ErrnoError(errno, "remove log `" + path_ + "`");
    }
  } else {
    std::string oldest = path_ + "." + std::to_string(max_files_ - 1);
    if (::unlink(oldest.c_str()) != 0 && errno != ENOENT) {
      throw ErrnoError(errno, "remove log `" + oldest + "`");
    }
    for (int i = max_files_ - 2; i >= 1; --i) {
      std::string from = path_ + "." + std::to_string(i);
      std::string to = path_ + "." + std::to_string(i + 1);
      if (::rename(from.c_str(), to.c_str()) != 0 && errno != ENOENT) {
        throw ErrnoError(errno, "rotate log `" + from + "`");
      }
    }
    std::string first = path_ + ".1";
    if (::rename(path_.c_str(), first.c_str()) != 0 && errno != ENOENT) {
      throw ErrnoError(errno, "rotate log `" + path_ + "`");
    }
  }
  Open(false);
}

void CriLogWriter::WriteRecord(std::string_view stream, char tag, std::string_view content) {
  std::string rec = FormatRfc3339Nano(system_clock::now());
  rec.reserve(rec.size() + stream.size() + content.size() + 5);
  rec += ' ';
  rec += stream;
  rec += ' ';
  rec += tag;
  rec += ' ';
  rec += content;
  rec += '\n';
  if (max_bytes_ > 0 && size_ > 0 && size_ + static_cast<int64_t>(rec.size()) > max_bytes_) {
    Rotate();
  }
  WriteAllFd(fd_.get(), rec, path_);
  size_ += static_cast<int64_t>(rec.size());
}

void CriLogWriter::Write(std::string_view stream, std::string_view data) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = pending_.find(stream);
  if (it == pending_.end()) it = pending_.emplace(std::string(stream), std::string()).first;
  std::string& pending = it->second;
  while (!data.empty()) {
    size_t nl = data.find('\n');
    if (nl == std::string_view::npos) {
      pending.append(data);
      data = {};
    } else {
      pending.append(data.substr(0, nl));
      data.remove_prefix(nl + 1);
    }
    // Like containerd's 16 KiB line buffer: longer lines go out in pieces.
    size_t start = 0;
    while (pending.size() - start > kCriLogMaxLineBytes) {
      WriteRecord(stream, 'P', std::string_view(pending).substr(start, kCriLogMaxLineBytes));
      start += kCriLogMaxLineBytes;
    }
    if (nl != std::string_view::npos) {
      WriteRecord(stream, 'F', std::string_view(pending).substr(start));
      pending.clear();
    } else {
      pending.erase(0, start);
    }
  }
}

void CriLogWriter::Flush() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [stream, pending] : pending_) {
    if (pending.empty()) continue;
    WriteRecord(stream, 'P', pending);
    pending.clear();
  }
}

void ReadCriLog(const std::string& path, const LogReadOptions& opts,
                const std::function<bool(std::string_view)>& sink,
                const std::function<bool()>& finished, const std::function<bool()>& should_stop) {
  // Open every file first so a rotation while reading cannot shift them.
  std::vector<UniqueFd> rotated;
  for (int i = 1;; ++i) {
    UniqueFd fd = OpenForRead(path + "." + std::to_string(i));
    if (!fd) break;
    rotated.push_back(std::move(fd));
  }
  UniqueFd current = OpenForRead(path);
  if (!current) {
    if (errno == ENOENT) throw Error::NotFound("log file `" + path + "` not found");
    throw ErrnoError(errno, "open log `" + path + "`");
  }
  std::vector<LineReader> files;
  for (auto it = rotated.rbegin(); it != rotated.rend(); ++it) files.emplace_back(std::move(*it));
  files.emplace_back(std::move(current));

  // Where output starts: the beginning, or the start of the tail_lines-th
  // last line (counting whole lines, not records).
  size_t start_file = 0;
  off_t start_offset = 0;
  if (opts.tail_lines && *opts.tail_lines >= 0) {
    const size_t want = static_cast<size_t>(*opts.tail_lines);
    std::deque<std::pair<size_t, off_t>> line_starts;
    bool prev_full = true;
    std::string_view line;
    off_t offset;
    for (size_t i = 0; i < files.size(); ++i) {
      while (files[i].Next(&line, &offset)) {
        auto rec = ParseCriLogLine(line);
        if (!rec) continue;
        if (prev_full) {
          line_starts.emplace_back(i, offset);
          if (line_starts.size() > want) line_starts.pop_front();
        }
        prev_full = !rec->partial;
      }
    }
    if (want == 0) {
      start_file = files.size() - 1;
      start_offset = files.back().end_offset();
    } else if (!line_starts.empty()) {
      std::tie(start_file, start_offset) = line_starts.front();
    }
  }

  LogEmitter emitter(opts, sink);
  for (size_t i = start_file; i < files.size(); ++i) {
    files[i].SeekTo(i == start_file ? start_offset : 0);
    if (i + 1 < files.size() && !Drain(files[i], emitter)) return;
  }
  LineReader* reader = &files.back();
  std::optional<LineReader> reopened;
  for (;;) {
    // Sampled before draining: lines written before finished() turned
    // true are all read by the drain below.
    const bool done = !opts.follow || (finished && finished());
    if (!Drain(*reader, emitter)) return;
    if (done || (should_stop && should_stop())) return;
    auto now_at_path = PathId(path);
    if (now_at_path && now_at_path != FileId(reader->fd().get())) {
      // Rotated: finish the old file (it may have grown just before the
      // rename), then continue with the new one.
      UniqueFd fd = OpenForRead(path);
      if (fd) {
        if (!Drain(*reader, emitter)) return;
        reopened.emplace(std::move(fd));
        reader = &*reopened;
        continue;
      }
    }
    std::this_thread::sleep_for(kFollowPollInterval);
  }
}

}  // namespace kin
