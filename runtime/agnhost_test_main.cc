// Test-only: `agnhost_test_main <subcommand> <flags>` runs RunAgnhost as a
// process of its own (what `kin agnhost ...` does in a pod).
#include <string>
#include <vector>

#include "runtime/agnhost.h"

int main(int argc, char** argv) {
  return kin::RunAgnhost(std::vector<std::string>(argv + 1, argv + argc));
}
