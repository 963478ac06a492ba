#include "base/process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "base/error.h"

namespace kin {
namespace {

TEST(ProcessTest, RunCommandCapturesOutputAndExitCode) {
  CommandResult r = RunCommand({"sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
  EXPECT_EQ(r.status.code, 3);
  EXPECT_FALSE(r.status.success());
}

TEST(ProcessTest, RunCommandFeedsStdin) {
  std::string big(200000, 'x');
  CommandResult r = RunCommand({"wc", "-c"}, std::chrono::seconds(10), big);
  EXPECT_EQ(std::stoi(r.out), 200000);
}

TEST(ProcessTest, RunCommandTimesOutAndKills) {
  auto start = std::chrono::steady_clock::now();
  try {
    RunCommand({"sleep", "30"}, std::chrono::milliseconds(200));
    FAIL() << "expected a timeout";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kTimeout);
    EXPECT_NE(e.message().find("sleep"), std::string::npos);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(ProcessTest, MissingCommandIsNotFoundNamingIt) {
  try {
    RunCommand({"kin-no-such-command-xyz"});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound);
    EXPECT_NE(e.message().find("kin-no-such-command-xyz"), std::string::npos) << e.message();
  }
}

TEST(ProcessTest, DestructorKillsARunningChild) {
  pid_t pid;
  {
    SpawnOptions o;
    o.argv = {"sleep", "30"};
    ChildProcess p = ChildProcess::Spawn(o);
    pid = p.pid();
    EXPECT_TRUE(ProcessAlive(pid));
  }
  // Reaped by the destructor: the pid no longer names our child.
  EXPECT_FALSE(ProcessAlive(pid));
}

TEST(ProcessTest, StopSendsTermThenKill) {
  SpawnOptions o;
  // An ignored signal stays ignored across exec: sleep itself ignores TERM.
  o.argv = {"sh", "-c", "trap '' TERM; exec sleep 30"};
  o.stdout_mode = o.stderr_mode = SpawnOptions::Stdio::kNull;
  ChildProcess p = ChildProcess::Spawn(o);
  // Signal only once the trap is in force: poll until the process's
  // disposition shows SIGTERM ignored (SigIgn bit 15).
  auto ignores_term = [&] {
    std::string status;
    FILE* f = fopen(("/proc/" + std::to_string(p.pid()) + "/status").c_str(), "r");
    if (!f) return false;
    char line[256];
    bool ok = false;
    while (fgets(line, sizeof line, f)) {
      if (strncmp(line, "SigIgn:", 7) == 0) {
        unsigned long long mask = strtoull(line + 7, nullptr, 16);
        ok = mask & (1ull << (SIGTERM - 1));
      }
    }
    fclose(f);
    return ok;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!ignores_term() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  ExitStatus s = p.Stop(std::chrono::milliseconds(100));
  EXPECT_EQ(s.signal, SIGKILL);
  EXPECT_FALSE(p.running());
}

TEST(ProcessTest, WaitForReturnsNulloptWhileRunning) {
  SpawnOptions o;
  o.argv = {"sleep", "30"};
  ChildProcess p = ChildProcess::Spawn(o);
  EXPECT_FALSE(p.WaitFor(std::chrono::milliseconds(10)).has_value());
  p.Signal(SIGTERM);
  auto s = p.WaitFor(std::chrono::seconds(5));
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->signal, SIGTERM);
  EXPECT_EQ(s->ToString(), "killed by signal TERM");
}

TEST(ProcessTest, EnvExtraOverrides) {
  CommandResult r = RunCommand({"sh", "-c", "echo $KIN_TEST_VAR"}, std::chrono::seconds(5), "",
                               {{"KIN_TEST_VAR", "hello"}});
  EXPECT_EQ(r.out, "hello\n");
}

// In a forked child with SIGPIPE's default action: a write to a pipe whose
// reader is gone, inside ScopedSigpipeBlock, fails with EPIPE and the
// process lives on, with nothing pending and the mask as before. The same
// write outside the block kills it (so the first check can fail).
TEST(ProcessTest, ScopedSigpipeBlockTurnsSigpipeIntoEpipe) {
  auto write_to_closed_pipe = [] {
    int fds[2];
    if (::pipe(fds) != 0) return -1;
    ::close(fds[0]);
    errno = 0;
    ssize_t n = ::write(fds[1], "x", 1);
    int err = errno;
    ::close(fds[1]);
    return n < 0 ? err : 0;
  };
  auto in_child = [&](bool blocked) {
    pid_t pid = ::fork();
    if (pid == 0) {
      ::signal(SIGPIPE, SIG_DFL);
      int err;
      if (blocked) {
        {
          ScopedSigpipeBlock outer;
          {
            ScopedSigpipeBlock inner;  // nested: leaves it to the outer one
          }
          sigset_t now;
          ::pthread_sigmask(SIG_BLOCK, nullptr, &now);
          if (!sigismember(&now, SIGPIPE)) ::_exit(3);
          err = write_to_closed_pipe();
        }
        sigset_t now, pending;
        ::pthread_sigmask(SIG_BLOCK, nullptr, &now);
        ::sigpending(&pending);
        if (sigismember(&now, SIGPIPE) || sigismember(&pending, SIGPIPE)) ::_exit(4);
      } else {
        err = write_to_closed_pipe();
      }
      ::_exit(err == EPIPE ? 0 : 5);
    }
    int ws = 0;
    ::waitpid(pid, &ws, 0);
    return ws;
  };
  int ws = in_child(true);
  ASSERT_TRUE(WIFEXITED(ws)) << "killed by signal " << WTERMSIG(ws);
  EXPECT_EQ(WEXITSTATUS(ws), 0);
  ws = in_child(false);
  ASSERT_TRUE(WIFSIGNALED(ws));
  EXPECT_EQ(WTERMSIG(ws), SIGPIPE);
}

}  // namespace
}  // namespace kin
