// The mount table, as the cleanup paths need it: which mounts sit at or
// under a directory, and unmounting all of them.
//
// Paths are read from /proc/self/mountinfo (unescaped), so they are as this
// process's mount namespace sees them.
//
// Thread-safety: thread-safe (no shared state).
#pragma once

#include <string>
#include <vector>

namespace kin {

// Every mount point, in mount order (a path mounted twice appears twice).
std::vector<std::string> MountPoints();

// The mount points at `dir` or below it, deepest first. `dir` must be
// absolute and without a trailing slash.
std::vector<std::string> MountPointsUnder(const std::string& dir);

// Unmounts everything at or below `dir`, deepest first, lazily (MNT_DETACH)
// where a mount is busy, again until nothing is left (stacked mounts). Throws
// the first failure, naming the mount point.
void UnmountAllUnder(const std::string& dir);

}  // namespace kin
