// CRI log writer and reader, in a temporary directory.
#include "runtime/cri_log.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "base/error.h"
#include "client/object.h"
#include "testing/kernel_fixture.h"

namespace kin {
namespace {

namespace fs = std::filesystem;
using kin::testing::Eventually;
using std::chrono::system_clock;

class CriLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kin-crilog-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/c.log";
  }
  void TearDown() override { fs::remove_all(dir_); }

  static std::string ReadFile(const std::string& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  static std::vector<std::string> Lines(const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
  }
  static void WriteFile(const std::string& p, const std::string& content) {
    std::ofstream(p) << content;
  }
  std::string Read(const LogReadOptions& opts) {
    std::string out;
    ReadCriLog(
        path_, opts, [&](std::string_view s) { return out.append(s), true; }, [] { return true; });
    return out;
  }

  std::string dir_;
  std::string path_;
};

TEST_F(CriLogTest, WritesFullLinesWithParsableUtcTimestamps) {
  auto before = system_clock::now();
  {
    CriLogWriter w(path_);
    w.Write("stdout", "hello\nwor");
    w.Write("stderr", "oops\n");
    w.Write("stdout", "ld\n");
  }
  auto after = system_clock::now();
  auto lines = Lines(ReadFile(path_));
  ASSERT_EQ(lines.size(), 3u);
  std::vector<std::pair<std::string, std::string>> got;
  for (const auto& l : lines) {
    auto rec = ParseCriLogLine(l);
    ASSERT_TRUE(rec) << l;
    EXPECT_FALSE(rec->partial);
    EXPECT_GE(rec->time, std::chrono::time_point_cast<std::chrono::microseconds>(before) -
                             std::chrono::microseconds(1));
    EXPECT_LE(rec->time, after);
    EXPECT_EQ(l.substr(0, l.find(' ')).back(), 'Z') << l;
    got.emplace_back(std::string(rec->stream), std::string(rec->content));
  }
  EXPECT_EQ(got, (std::vector<std::pair<std::string, std::string>>{
                     {"stdout", "hello"}, {"stderr", "oops"}, {"stdout", "world"}}));
  EXPECT_NE(lines[0].find(" stdout F hello"), std::string::npos) << lines[0];
  EXPECT_EQ(fs::status(path_).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
}

TEST_F(CriLogTest, UnfinishedAndOverlongLinesBecomePartialRecords) {
  CriLogWriter w(path_);
  std::string longline(2 * kCriLogMaxLineBytes + 10, 'x');
  w.Write("stdout", longline + "\nno newline yet");
  w.Flush();
  auto lines = Lines(ReadFile(path_));
  ASSERT_EQ(lines.size(), 4u);
  std::vector<std::pair<bool, size_t>> shape;
  for (const auto& l : lines) {
    auto rec = ParseCriLogLine(l);
    ASSERT_TRUE(rec);
    shape.emplace_back(rec->partial, rec->content.size());
  }
  EXPECT_EQ(
      shape,
      (std::vector<std::pair<bool, size_t>>{
          {true, kCriLogMaxLineBytes}, {true, kCriLogMaxLineBytes}, {false, 10}, {true, 14}}));
  // The reader joins the pieces back.
  EXPECT_EQ(Read({}), longline + "\nno newline yet");
}

TEST_F(CriLogTest, RotatesKeepingMaxFiles) {
  {
    CriLogWriter w(path_, /*max_bytes=*/300, /*max_files=*/3);
    for (int i = 0; i < 40; ++i) w.Write("stdout", "line " + std::to_string(i) + "\n");
  }
  EXPECT_TRUE(fs::exists(path_));
  EXPECT_TRUE(fs::exists(path_ + ".1"));
  EXPECT_TRUE(fs::exists(path_ + ".2"));
  EXPECT_FALSE(fs::exists(path_ + ".3"));
  for (const auto& p : {path_, path_ + ".1", path_ + ".2"}) EXPECT_LE(fs::file_size(p), 300u) << p;
  // What is kept is the newest lines, contiguous, ending with the last.
  auto lines = Lines(Read({}));
  ASSERT_GE(lines.size(), 10u);
  EXPECT_EQ(lines.back(), "line 39");
  int first = std::stoi(lines.front().substr(5));
  for (size_t i = 0; i < lines.size(); ++i)
    EXPECT_EQ(lines[i], "line " + std::to_string(first + i));
}

TEST_F(CriLogTest, OneFileMeansStartingOver) {
  {
    CriLogWriter w(path_, 100, 1);
    for (int i = 0; i < 10; ++i) w.Write("stdout", "line " + std::to_string(i) + "\n");
  }
  EXPECT_FALSE(fs::exists(path_ + ".1"));
  EXPECT_LE(fs::file_size(path_), 100u);
  EXPECT_EQ(Lines(Read({})).back(), "line 9");
}

TEST_F(CriLogTest, MissingLogIsNotFound) {
  try {
    Read({});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound);
  }
}

// Records with chosen timestamps: second i of 2024-01-01.
std::string Rec(int second, const std::string& tag, const std::string& content,
                const std::string& stream = "stdout") {
  char ts[64];
  std::snprintf(ts, sizeof ts, "2024-01-01T00:00:%02d.5Z", second);
  return std::string(ts) + " " + stream + " " + tag + " " + content + "\n";
}

TEST_F(CriLogTest, TailCountsWholeLinesAcrossRotatedFiles) {
  WriteFile(path_ + ".2", Rec(1, "F", "a"));
  WriteFile(path_ + ".1", Rec(2, "F", "b") + Rec(3, "P", "c1") + Rec(4, "F", "c2"));
  WriteFile(path_, Rec(5, "F", "d") + "garbage line\n" + Rec(6, "F", "e", "stderr"));
  EXPECT_EQ(Read({}), "a\nb\nc1c2\nd\ne\n");
  EXPECT_EQ(Read({.tail_lines = 3}), "c1c2\nd\ne\n");
  EXPECT_EQ(Read({.tail_lines = 4}), "b\nc1c2\nd\ne\n");
  EXPECT_EQ(Read({.tail_lines = 100}), "a\nb\nc1c2\nd\ne\n");
  EXPECT_EQ(Read({.tail_lines = 0}), "");
}

TEST_F(CriLogTest, SinceTimeTimestampsAndLimitBytes) {
  WriteFile(path_,
            Rec(1, "F", "one") + Rec(2, "P", "tw") + Rec(3, "F", "o") + Rec(4, "F", "three"));
  auto since = object::ParseRfc3339("2024-01-01T00:00:02Z");
  ASSERT_TRUE(since);
  EXPECT_EQ(Read({.since_time = since}), "two\nthree\n");
  EXPECT_EQ(Read({.timestamps = true}),
            "2024-01-01T00:00:01.500000000Z one\n"
            "2024-01-01T00:00:02.500000000Z two\n"
            "2024-01-01T00:00:04.500000000Z three\n");
  EXPECT_EQ(Read({.limit_bytes = 6}), "one\ntw");
  EXPECT_EQ(Read({.limit_bytes = 4}), "one\n");
  EXPECT_EQ(Read({.tail_lines = 1, .timestamps = true, .limit_bytes = 33}),
            "2024-01-01T00:00:04.500000000Z th");
}

TEST_F(CriLogTest, ParsesAndFormatsRfc3339) {
  auto t = object::ParseRfc3339("2016-10-06T00:17:09.669794202Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(FormatRfc3339NanoFixed(*t), "2016-10-06T00:17:09.669794202Z");
  EXPECT_EQ(FormatRfc3339Nano(*t), "2016-10-06T00:17:09.669794202Z");
  auto u = object::ParseRfc3339("2016-10-06T02:17:09.5+02:00");
  ASSERT_TRUE(u);
  EXPECT_EQ(FormatRfc3339Nano(*u), "2016-10-06T00:17:09.5Z");
  EXPECT_EQ(FormatRfc3339NanoFixed(*u), "2016-10-06T00:17:09.500000000Z");
  EXPECT_EQ(FormatRfc3339Nano(*object::ParseRfc3339("2016-10-06T00:17:09Z")), "2016-10-06T00:17:09Z");
  EXPECT_FALSE(object::ParseRfc3339("2016-10-06 00:17:09Z"));
  EXPECT_FALSE(object::ParseRfc3339("2016-10-06T00:17:09"));
  EXPECT_FALSE(ParseCriLogLine("2016-10-06T00:17:09Z stdin F x"));
  EXPECT_FALSE(ParseCriLogLine("2016-10-06T00:17:09Z stdout X x"));
  auto r = ParseCriLogLine("2016-10-06T00:17:09Z stderr F \n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->content, "");
}

// Ends a follower thread however the test leaves the scope (a failed
// ASSERT included): raises `flag`, then joins.
class FollowerThread {
 public:
  FollowerThread(std::atomic<bool>& flag, std::function<void()> fn)
      : flag_(flag), thread_(std::move(fn)) {}
  ~FollowerThread() { Join(); }
  void Join() {
    flag_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool>& flag_;
  std::thread thread_;
};

// Collects what a follower writes, for another thread to look at.
struct Collector {
  std::mutex mu;
  std::string text;
  bool Add(std::string_view s) {
    std::lock_guard<std::mutex> l(mu);
    text.append(s);
    return true;
  }
  std::string Get() {
    std::lock_guard<std::mutex> l(mu);
    return text;
  }
};

TEST_F(CriLogTest, FollowPicksUpAppendedLinesAcrossRotationUntilFinished) {
  CriLogWriter w(path_, /*max_bytes=*/400, /*max_files=*/2);
  w.Write("stdout", "first\n");
  Collector got;
  std::atomic<bool> finished{false};
  std::atomic<bool> returned{false};
  FollowerThread reader(finished, [&] {
    ReadCriLog(
        path_, {.follow = true}, [&](std::string_view s) { return got.Add(s); },
        [&] { return finished.load(); });
    returned = true;
  });
  ASSERT_TRUE(Eventually([&] { return got.Get() == "first\n"; }));
  std::string expected = "first\n";
  // Enough lines for several rotations, but each step waits for the
  // follower, so no line is rotated away before it was read.
  for (int i = 0; i < 30; ++i) {
    std::string line = "line " + std::to_string(i) + " " + std::string(20, 'y') + "\n";
    w.Write("stdout", line);
    expected += line;
    ASSERT_TRUE(Eventually([&] { return got.Get() == expected; })) << got.Get();
  }
  EXPECT_TRUE(fs::exists(path_ + ".1"));
  EXPECT_FALSE(returned.load());
  w.Write("stdout", "last\n");
  reader.Join();  // sets finished
  EXPECT_EQ(got.Get(), expected + "last\n");
}

TEST_F(CriLogTest, FollowWithTailZeroShowsOnlyNewLines) {
  CriLogWriter w(path_);
  w.Write("stdout", "old 1\nold 2\n");
  Collector got;
  std::atomic<bool> finished{false};
  std::atomic<int> polls{0};  // finished() is asked once the follower is following
  std::thread reader([&] {
    ReadCriLog(
        path_, {.tail_lines = 0, .follow = true}, [&](std::string_view s) { return got.Add(s); },
        [&] { return ++polls, finished.load(); });
  });
  bool following = Eventually([&] { return polls.load() > 0; });
  if (following) w.Write("stdout", "new\n");
  bool seen = following && Eventually([&] { return got.Get() == "new\n"; });
  finished = true;
  reader.join();
  EXPECT_TRUE(following);
  EXPECT_TRUE(seen);
  EXPECT_EQ(got.Get(), "new\n");
}

TEST_F(CriLogTest, FollowStopsWhenTheSinkIsGone) {
  CriLogWriter w(path_);
  w.Write("stdout", "a\n");
  std::atomic<int> calls{0};
  std::atomic<bool> returned{false};
  std::atomic<bool> abort{false};  // only for a failing test
  FollowerThread reader(abort, [&] {
    ReadCriLog(
        path_, {.follow = true}, [&](std::string_view) { return ++calls < 2; },
        [] { return false; }, [&] { return abort.load(); });
    returned = true;
  });
  ASSERT_TRUE(Eventually([&] { return calls.load() == 1; }));
  w.Write("stdout", "b\n");
  // Returns although finished() never turns true.
  EXPECT_TRUE(Eventually([&] { return returned.load(); }));
  EXPECT_EQ(calls.load(), 2);
}

TEST_F(CriLogTest, FollowStopsOnShouldStop) {
  CriLogWriter w(path_);
  std::atomic<bool> stop{false};
  std::atomic<bool> returned{false};
  std::thread reader([&] {
    ReadCriLog(
        path_, {.follow = true}, [](std::string_view) { return true; }, [] { return false; },
        [&] { return stop.load(); });
    returned = true;
  });
  stop = true;
  EXPECT_TRUE(Eventually([&] { return returned.load(); }, std::chrono::seconds(5)));
  reader.join();
}

}  // namespace
}  // namespace kin
