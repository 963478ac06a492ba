// Golden files: a test's expected output kept in a file under testdata/,
// compared as a whole so a reviewer sees the full effect of a change.
//
// ExpectGolden(path, actual) fails the running gtest test when the file at
// `path` is missing or differs from `actual`. With KIN_UPDATE_GOLDEN=1 in
// the environment it writes `actual` to the file instead (review the diff
// before committing it).
//
// Thread-safety: as gtest assertions (from the test's thread).
#pragma once

#include <string>

namespace kin::testing {

void ExpectGolden(const std::string& path, const std::string& actual);

}  // namespace kin::testing
