// Small file helpers every module needs: whole-file reads and atomic writes.
//
// WriteFileAtomic writes a temp file in the same directory (created 0600,
// then chmod to `mode`) and renames it over `path`, so readers see the old
// or the new content, never a part. With `sync` the data is fsync()ed before
// the rename (keys, certificates: things that must survive a power cut);
// without it the write is only atomic (state files rebuilt on restart).
//
// Thread-safety: thread-safe (no shared state).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

namespace kin {

void WriteFileAtomic(const std::string& path, std::string_view content, mode_t mode,
                     bool sync = true);

// The file's content; nullopt when it does not exist. Other failures throw.
std::optional<std::string> ReadFileIfExists(const std::string& path);

}  // namespace kin
