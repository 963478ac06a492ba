// Container logs in the CRI format, as containerd writes them and kubelet
// reads them for `kubectl logs`.
//
// Each record is one line:
//   <RFC3339Nano timestamp, UTC> <stdout|stderr> <P|F> <content>\n
// F ends a line of the container's output; P is a piece of a longer line
// (continued by the following records up to the next F). Like containerd,
// the writer splits lines longer than 16 KiB into P pieces, and a piece the
// container never finished with a newline is written as P on Flush().
//
// Rotation: `path` -> `path.1` -> ... -> `path.<max_files-1>`, newest first,
// so the reader reads path.<n> ... path.1, then path.
//
// ReadCriLog renders the content the way kubelet's ReadLogs does: partial
// pieces joined, "<RFC3339Nano with 9 digits> " before each line with
// timestamps, since_time compared with each record's timestamp, tail counted
// in whole lines (across the rotated files), limit_bytes cutting the output
// exactly. With follow it keeps going (polling every 100 ms, following the
// file across a rotation) until finished() is true and the file is drained,
// the sink returns false, or should_stop() is true.
//
// Errors: kin::Error (ErrnoError for file failures; NotFound when the log
// does not exist). Malformed lines are skipped, as kubelet logs and skips.
//
// Thread-safety: a CriLogWriter is thread-safe (one mutex). ReadCriLog is
// thread-safe and may run while a writer appends and rotates.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "base/fd.h"

namespace kin {

inline constexpr size_t kCriLogMaxLineBytes = 16 * 1024;  // containerd's default

class CriLogWriter {
 public:
  // Appends to `path` (created 0640). Rotates when a record would take the
  // file past max_bytes (0: never); max_files >= 1 counts `path` itself.
  explicit CriLogWriter(std::string path, int64_t max_bytes = 10 << 20, int max_files = 5);
  ~CriLogWriter();
  CriLogWriter(const CriLogWriter&) = delete;
  CriLogWriter& operator=(const CriLogWriter&) = delete;

  // `stream` is "stdout" or "stderr".
  void Write(std::string_view stream, std::string_view data);
  // Writes every stream's unfinished line as a P record.
  void Flush();

  const std::string& path() const { return path_; }

 private:
  void Open(bool truncate);
  void Rotate();
  void WriteRecord(std::string_view stream, char tag, std::string_view content);

  std::mutex mu_;
  std::string path_;
  int64_t max_bytes_;
  int max_files_;
  UniqueFd fd_;
  int64_t size_ = 0;
  std::map<std::string, std::string, std::less<>> pending_;  // stream -> unfinished line
};

struct LogReadOptions {
  std::optional<int64_t> tail_lines;
  std::optional<std::chrono::system_clock::time_point> since_time;
  bool timestamps = false;
  std::optional<int64_t> limit_bytes;
  bool follow = false;
};

void ReadCriLog(const std::string& path, const LogReadOptions& opts,
                const std::function<bool(std::string_view)>& sink,
                const std::function<bool()>& finished,
                const std::function<bool()>& should_stop = {});

// The pieces below are pure, exposed for tests.

struct CriLogRecord {
  std::chrono::system_clock::time_point time;
  std::string_view stream;
  bool partial = false;
  std::string_view content;  // without the record's trailing newline
};
// Parses one record (with or without its '\n'); nullopt when malformed.
std::optional<CriLogRecord> ParseCriLogLine(std::string_view line);
// (Timestamps are parsed with object::ParseRfc3339, client/object.h.)
// Go's RFC3339Nano in UTC: trailing zeros of the fraction dropped.
std::string FormatRfc3339Nano(std::chrono::system_clock::time_point t);
// kubelet's RFC3339NanoFixed in UTC: always nine fraction digits.
std::string FormatRfc3339NanoFixed(std::chrono::system_clock::time_point t);

}  // namespace kin
