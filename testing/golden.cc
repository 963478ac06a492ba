#include "testing/golden.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace kin::testing {

void ExpectGolden(const std::string& path, const std::string& actual) {
  const char* update = std::getenv("KIN_UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    std::ofstream out(path);
    out << actual;
    EXPECT_TRUE(out.good()) << "cannot write golden file " << path;
    return;
  }
  std::ifstream in(path);
  ASSERT_TRUE(in) << "missing golden file " << path << " (run with KIN_UPDATE_GOLDEN=1)";
  std::stringstream want;
  want << in.rdbuf();
  EXPECT_EQ(actual, want.str()) << "golden file " << path
                                << " differs (KIN_UPDATE_GOLDEN=1 rewrites it)";
}

}  // namespace kin::testing
