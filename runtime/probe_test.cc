// Probe schedule arithmetic and thresholds, probe validation, exec and grpc
// probes. Network probes (httpGet, tcpSocket) are in probe_kernel_test.cc,
// which runs them inside a network namespace of its own.
#include "runtime/probe.h"

#include <gtest/gtest.h>

#include "base/error.h"

namespace kin {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

Code CodeOf(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "no kin::Error thrown";
  return Code::kInternal;
}

TEST(ProbeScheduleTest, DefaultsMatchKubernetes) {
  ProbeSchedule s(Json::object(), /*initial_result=*/false);
  EXPECT_EQ(s.timeout(), seconds(1));
  EXPECT_EQ(s.period(), seconds(10));
  EXPECT_EQ(s.initial_delay(), seconds(0));
  EXPECT_EQ(s.success_threshold(), 1);
  EXPECT_EQ(s.failure_threshold(), 3);
  EXPECT_FALSE(s.result());
}

TEST(ProbeScheduleTest, FirstAttemptAfterInitialDelayThenEveryPeriod) {
  ProbeSchedule s(Json{{"initialDelaySeconds", 5}, {"periodSeconds", 3}, {"timeoutSeconds", 2}},
                  false);
  const auto started = Clock::now();
  EXPECT_EQ(s.NextDue(started), started + seconds(5));
  EXPECT_EQ(s.timeout(), seconds(2));
  const auto first = started + seconds(5) + milliseconds(20);
  s.Record(false, first);
  EXPECT_EQ(s.NextDue(started), first + seconds(3));
  const auto second = first + seconds(3);
  s.Record(false, second);
  EXPECT_EQ(s.NextDue(started), second + seconds(3));
}

TEST(ProbeScheduleTest, ReadinessNeedsSuccessThresholdConsecutiveSuccesses) {
  ProbeSchedule s(Json{{"successThreshold", 2}, {"failureThreshold", 2}}, false);
  auto t = Clock::now();
  EXPECT_FALSE(s.Record(true, t));
  EXPECT_FALSE(s.result());
  EXPECT_FALSE(s.Record(false, t));  // breaks the run of successes
  EXPECT_FALSE(s.Record(true, t));
  EXPECT_TRUE(s.Record(true, t));
  EXPECT_TRUE(s.result());
  EXPECT_FALSE(s.Record(true, t));  // unchanged: no report
  EXPECT_TRUE(s.result());
}

TEST(ProbeScheduleTest, LivenessFailsAfterFailureThresholdConsecutiveFailures) {
  ProbeSchedule s(Json::object(), /*initial_result=*/true);
  auto t = Clock::now();
  EXPECT_TRUE(s.result());
  EXPECT_FALSE(s.Record(false, t));
  EXPECT_FALSE(s.Record(false, t));
  EXPECT_FALSE(s.Record(true, t));  // resets the failure run; still true
  EXPECT_TRUE(s.result());
  EXPECT_FALSE(s.Record(false, t));
  EXPECT_FALSE(s.Record(false, t));
  EXPECT_TRUE(s.result());
  EXPECT_TRUE(s.Record(false, t));
  EXPECT_FALSE(s.result());
  EXPECT_TRUE(s.Record(true, t));  // successThreshold 1
  EXPECT_TRUE(s.result());
}

TEST(ProbeScheduleTest, RejectsOutOfRangeValues) {
  EXPECT_EQ(CodeOf([] { ProbeSchedule(Json{{"periodSeconds", 0}}, false); }), Code::kInvalid);
  EXPECT_EQ(CodeOf([] {
              ProbeSchedule(Json{{"initialDelaySeconds", -1}}, false);
            }),
            Code::kInvalid);
  EXPECT_EQ(CodeOf([] { ProbeSchedule(Json{{"failureThreshold", "3"}}, false); }), Code::kInvalid);
}

TEST(RunProbeTest, MalformedProbesAreInvalid) {
  ProbeTarget target{.pod_ip = "127.0.0.1"};
  Json container = {{"name", "c"}, {"ports", {{{"name", "http"}, {"containerPort", 8080}}}}};
  auto code = [&](const Json& probe) {
    return CodeOf([&] { RunProbe(probe, container, target); });
  };
  EXPECT_EQ(code(Json::object()), Code::kInvalid);
  EXPECT_EQ(code(Json{{"timeoutSeconds", 1}}), Code::kInvalid);
  EXPECT_EQ(code(Json{{"tcpSocket", {{"port", 80}}}, {"exec", {{"command", {"true"}}}}}),
            Code::kInvalid);
  EXPECT_EQ(code(Json{{"httpGet", {{"port", "metrics"}}}}), Code::kInvalid);
  EXPECT_EQ(code(Json{{"tcpSocket", {{"port", 0}}}}), Code::kInvalid);
  EXPECT_EQ(code(Json{{"tcpSocket", {{"port", 70000}}}}), Code::kInvalid);
  EXPECT_EQ(code(Json{{"tcpSocket", Json::object()}}), Code::kInvalid);
  EXPECT_EQ(code(Json{{"httpGet", {{"port", 80}, {"scheme", "FTP"}}}}), Code::kInvalid);
  EXPECT_EQ(code(Json{{"exec", Json::object()}}), Code::kInvalid);
  EXPECT_EQ(code(Json{{"exec", {{"command", {"true"}}}}, {"timeoutSeconds", 0}}), Code::kInvalid);
  try {
    RunProbe(Json{{"httpGet", {{"port", "metrics"}}}}, container, target);
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("metrics"), std::string::npos) << e.message();
  }
}

TEST(RunProbeTest, ExecSucceedsOnExitZeroAndPassesArgvAndTimeout) {
  std::vector<std::string> seen_argv;
  milliseconds seen_timeout{0};
  ProbeTarget target;
  target.exec = [&](const std::vector<std::string>& argv, milliseconds timeout) {
    seen_argv = argv;
    seen_timeout = timeout;
    return ExecResult{0, "ok\n"};
  };
  auto out = RunProbe(Json{{"exec", {{"command", {"cat", "/tmp/healthy"}}}}, {"timeoutSeconds", 3}},
                      Json::object(), target);
  EXPECT_TRUE(out.success);
  EXPECT_EQ(seen_argv, (std::vector<std::string>{"cat", "/tmp/healthy"}));
  EXPECT_EQ(seen_timeout, seconds(3));
}

TEST(RunProbeTest, ExecFailsWithTheOutputOnNonZeroExit) {
  ProbeTarget target;
  target.exec = [](const std::vector<std::string>&, milliseconds) {
    return ExecResult{1, "cat: /tmp/healthy: No such file or directory\n"};
  };
  auto out =
      RunProbe(Json{{"exec", {{"command", {"cat", "/tmp/healthy"}}}}}, Json::object(), target);
  EXPECT_FALSE(out.success);
  EXPECT_EQ(out.message, "cat: /tmp/healthy: No such file or directory\n");
}

TEST(RunProbeTest, ExecTimeoutIsAFailureSayingSo) {
  ProbeTarget target;
  target.exec = [](const std::vector<std::string>&, milliseconds) { return ExecResult{-1, ""}; };
  Json probe = {{"exec", {{"command", {"sleep", "10"}}}}};
  auto out = RunProbe(probe, Json::object(), target);
  EXPECT_FALSE(out.success);
  EXPECT_EQ(out.message, "command \"sleep 10\" timed out");

  target.exec = [](const std::vector<std::string>&, milliseconds) -> ExecResult {
    throw Error::Timeout("exec timed out");
  };
  out = RunProbe(probe, Json::object(), target);
  EXPECT_FALSE(out.success);
  EXPECT_EQ(out.message, "command \"sleep 10\" timed out");

  target.exec = [](const std::vector<std::string>&, milliseconds) -> ExecResult {
    throw Error::NotFound("container \"c\" is not running");
  };
  out = RunProbe(probe, Json::object(), target);
  EXPECT_FALSE(out.success);
  EXPECT_EQ(out.message, "container \"c\" is not running");
}

TEST(RunProbeTest, GrpcIsReportedAsUnsupported) {
  auto out = RunProbe(Json{{"grpc", {{"port", 9090}}}}, Json::object(),
                      ProbeTarget{.pod_ip = "127.0.0.1"});
  EXPECT_FALSE(out.success);
  EXPECT_EQ(out.message, "grpc probes are not supported by kin");
}

TEST(RunProbeTest, TimeoutComesFromTheProbe) {
  EXPECT_EQ(ProbeTimeout(Json::object()), seconds(1));
  EXPECT_EQ(ProbeTimeout(Json{{"timeoutSeconds", 7}}), seconds(7));
}

}  // namespace
}  // namespace kin
