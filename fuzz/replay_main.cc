// Replays a fuzzer's inputs without libFuzzer, so the normal (gcc) build
// runs every fuzzer's seed corpus and crash reproducers as a unit test:
//
//   <name>_fuzz_replay DIR_OR_FILE...
//
// Calls LLVMFuzzerTestOneInput once on each file (a directory: each regular
// file in it, in name order). A fuzzer reports a failure by crashing
// (abort(), a sanitizer), so a failing input ends this process with that
// signal; the last "replay:" line on stderr names the input. Exits 1 if a
// path cannot be read or holds no input at all (a renamed or emptied corpus
// must not pass silently), 0 when every input ran.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

namespace fs = std::filesystem;

bool Inputs(const fs::path& path, std::vector<fs::path>& out) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    out.push_back(path);
    return true;
  }
  if (!fs::is_directory(path, ec)) {
    std::fprintf(stderr, "replay: %s: not a file or directory\n", path.c_str());
    return false;
  }
  std::vector<fs::path> files;
  for (const fs::directory_entry& e : fs::directory_iterator(path, ec)) {
    if (e.is_regular_file()) files.push_back(e.path());
  }
  if (ec) {
    std::fprintf(stderr, "replay: %s: %s\n", path.c_str(), ec.message().c_str());
    return false;
  }
  if (files.empty()) {
    std::fprintf(stderr, "replay: %s: no inputs\n", path.c_str());
    return false;
  }
  std::sort(files.begin(), files.end());
  out.insert(out.end(), files.begin(), files.end());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DIR_OR_FILE...\n", argv[0]);
    return 1;
  }
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    if (!Inputs(argv[i], files)) return 1;
  }
  for (const fs::path& file : files) {
    std::ifstream in(file, std::ios::binary);
    std::vector<uint8_t> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) {
      std::fprintf(stderr, "replay: %s: read failed\n", file.c_str());
      return 1;
    }
    // Before the call: if the input crashes, this is the last line printed.
    std::fprintf(stderr, "replay: %s (%zu bytes)\n", file.c_str(), data.size());
    std::fflush(stderr);
    // A buffer of exactly the input's size, as libFuzzer passes: an over-read
    // shows in sanitizer builds (make test-asan) as it would when fuzzing.
    LLVMFuzzerTestOneInput(data.data(), data.size());
  }
  std::printf("replayed %zu inputs\n", files.size());
  return 0;
}
