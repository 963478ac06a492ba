#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/filter.h>

#include <algorithm>

#include "base/error.h"
#include "runtime/container_launch.h"
#include "runtime/container_spec.h"

namespace kin {
namespace {

using ::testing::HasSubstr;

ContainerSpec ValidSpec() {
  ContainerSpec s;
  s.name = "web";
  s.argv = {"/bin/busybox", "sh", "-c", "echo hi"};
  s.env = {"PATH=/bin:/usr/bin"};
  return s;
}

std::vector<std::string> Fields(const Error& e) {
  std::vector<std::string> out;
  for (const auto& c : e.causes()) out.push_back(c.field);
  return out;
}

TEST(ContainerSpecTest, ValidSpecPasses) { EXPECT_NO_THROW(ValidateContainerSpec(ValidSpec())); }

TEST(ContainerSpecTest, ReportsEveryBadField) {
  ContainerSpec s = ValidSpec();
  s.name = "";
  s.argv = {};
  s.env = {"NOEQUALS"};
  s.working_dir = "relative";
  s.net_ns = "run/netns/x";
  s.hostname = "h";  // no new UTS namespace
  s.cap_add = {"NOT_A_CAP"};
  s.resources.memory_bytes = 100;
  s.mounts = {{"", "/etc/hosts", true}};
  try {
    ValidateContainerSpec(s);
    FAIL() << "expected Invalid";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalid);
    EXPECT_THAT(Fields(e),
                ::testing::UnorderedElementsAre(
                    "name", "command", "env[0]", "workingDir", "namespaces.network", "hostname",
                    "capabilities.add", "resources.limits.memory", "mounts[0].source"));
    EXPECT_THAT(e.message(), HasSubstr("unknown capability \"NOT_A_CAP\""));
  }
}

TEST(ContainerSpecTest, RejectsJoiningAndCreatingTheSameNamespace) {
  ContainerSpec s = ValidSpec();
  s.pid_ns = "/proc/1/ns/pid";
  s.new_pid_ns = true;
  s.uts_ns = "/proc/1/ns/uts";
  s.new_uts_ns = true;
  try {
    ValidateContainerSpec(s);
    FAIL() << "expected Invalid";
  } catch (const Error& e) {
    EXPECT_THAT(Fields(e), ::testing::UnorderedElementsAre("namespaces.pid", "namespaces.uts"));
  }
}

TEST(ContainerSpecTest, BindMountsNeedAMountNamespace) {
  ContainerSpec s = ValidSpec();
  s.new_mount_ns = false;
  s.mounts = {{"/tmp/hosts", "/etc/hosts", false}};
  EXPECT_THROW(ValidateContainerSpec(s), Error);
}

TEST(ContainerSpecTest, RendersEveryField) {
  ContainerSpec s = ValidSpec();
  s.argv = {"/bin/busybox", "sh", "-c", "echo \"hi there\""};
  s.working_dir = "/tmp";
  s.net_ns = "/run/netns/pod1";
  s.ipc_ns = "/proc/42/ns/ipc";
  s.new_uts_ns = true;
  s.hostname = "web-0";
  s.uid = 1000;
  s.gid = 1000;
  s.supplemental_groups = {5, 6};
  s.cap_drop = {"ALL"};
  s.cap_add = {"NET_BIND_SERVICE"};
  s.seccomp = SeccompProfile::kUnconfined;
  s.resources = {32 << 20, 250, 64};
  s.mounts = {{"/var/lib/kin/hosts", "/etc/hosts", true}};
  s.log_path = "/var/log/pods/web.log";
  EXPECT_EQ(RenderContainerSpec(s),
            "container web\n"
            "argv /bin/busybox sh -c \"echo \\\"hi there\\\"\"\n"
            "env PATH=/bin:/usr/bin\n"
            "workdir /tmp\n"
            "join net /run/netns/pod1\n"
            "join ipc /proc/42/ns/ipc\n"
            "new mnt,uts\n"
            "hostname web-0\n"
            "user 1000:1000,5,6\n"
            "capabilities 0000000000000400\n"
            "seccomp Unconfined\n"
            "no_new_privs true\n"
            "memory 33554432\n"
            "cpu 250m quota 25000/100000\n"
            "pids 64\n"
            "bind /var/lib/kin/hosts -> /etc/hosts ro\n"
            "log /var/log/pods/web.log\n");
}

TEST(ContainerSpecTest, DefaultCapabilitiesAreKubernetesDefaults) {
  // CHOWN 0, DAC_OVERRIDE 1, FOWNER 3, FSETID 4, KILL 5, SETGID 6, SETUID 7,
  // SETPCAP 8, NET_BIND_SERVICE 10, NET_RAW 13, SYS_CHROOT 18, MKNOD 27,
  // AUDIT_WRITE 29, SETFCAP 31: the CapEff Docker and containerd show.
  EXPECT_EQ(CapabilityMask(ValidSpec()), 0xa80425fbull);
  EXPECT_EQ(DefaultCapabilityNames().size(), 14u);
}

TEST(ContainerSpecTest, CapabilityAddsAndDrops) {
  ContainerSpec s = ValidSpec();
  s.cap_drop = {"NET_RAW", "cap_kill"};
  s.cap_add = {"CAP_NET_ADMIN"};
  uint64_t m = CapabilityMask(s);
  EXPECT_FALSE(m & (1ull << 13));
  EXPECT_FALSE(m & (1ull << 5));
  EXPECT_TRUE(m & (1ull << 12));
  s.cap_drop = {};
  s.cap_add = {"ALL"};
  EXPECT_EQ(CapabilityMask(s, 40), (1ull << 41) - 1);
  EXPECT_EQ(CapabilityNumber("SYS_ADMIN"), 21);
  EXPECT_EQ(CapabilityNumber("CAP_CHECKPOINT_RESTORE"), 40);
  EXPECT_EQ(CapabilityNumber("NOPE"), std::nullopt);
  s.cap_add = {"NOPE"};
  EXPECT_THROW(CapabilityMask(s), Error);
}

TEST(ContainerSpecTest, MilliCpuToQuotaMatchesKubelet) {
  EXPECT_EQ(MilliCpuToQuota(0).quota_us, -1);
  EXPECT_EQ(MilliCpuToQuota(0).period_us, 100000);
  EXPECT_EQ(MilliCpuToQuota(1000).quota_us, 100000);
  EXPECT_EQ(MilliCpuToQuota(250).quota_us, 25000);
  EXPECT_EQ(MilliCpuToQuota(2500).quota_us, 250000);
  EXPECT_EQ(MilliCpuToQuota(1).quota_us, 1000);  // the kernel's 1 ms minimum
  EXPECT_EQ(MilliCpuToQuota(10).quota_us, 1000);
  EXPECT_EQ(MilliCpuToQuota(11).quota_us, 1100);
}

TEST(SeccompTest, UnconfinedHasNoRulesAndNoProgram) {
  EXPECT_TRUE(SeccompRules(SeccompProfile::kUnconfined).empty());
  EXPECT_TRUE(SeccompProgram::Build(SeccompProfile::kUnconfined).empty());
}

TEST(SeccompTest, RuntimeDefaultDeniesDangerousSyscalls) {
  auto rules = SeccompRules(SeccompProfile::kRuntimeDefault);
  auto find = [&](const std::string& name) {
    return std::find_if(rules.begin(), rules.end(),
                        [&](const SeccompRule& r) { return r.syscall == name; });
  };
  for (const char* s :
       {"keyctl", "add_key", "request_key", "kexec_load", "open_by_handle_at", "init_module",
        "finit_module", "delete_module", "reboot", "swapon", "swapoff", "bpf", "perf_event_open",
        "userfaultfd", "mount", "umount2", "pivot_root"}) {
    auto it = find(s);
    ASSERT_NE(it, rules.end()) << s;
    EXPECT_EQ(it->errno_value, EPERM) << s;
    EXPECT_EQ(it->arg0_flags, 0u) << s;
  }
  EXPECT_EQ(find("ptrace"), rules.end());  // allowed, as Docker does on kernels >= 4.8
  EXPECT_EQ(find("clone3")->errno_value, ENOSYS);
  EXPECT_TRUE(find("unshare")->arg0_flags & CLONE_NEWUSER);
  EXPECT_TRUE(find("clone")->arg0_flags & CLONE_NEWNET);
  EXPECT_FALSE(find("clone")->arg0_flags & 0xff);  // exit-signal bits stay free
}

TEST(SeccompTest, RuntimeDefaultCompilesToAFilterEndingInAllow) {
  SeccompProgram p = SeccompProgram::Build(SeccompProfile::kRuntimeDefault);
  ASSERT_FALSE(p.empty());
  EXPECT_GT(p.instructions().size(), 20u);
  EXPECT_THAT(p.syscalls(), ::testing::Contains("keyctl"));
  EXPECT_THAT(p.syscalls(), ::testing::Contains("unshare"));
  // Every path ends in a return; the default action is allow.
  bool has_allow = false, has_eperm = false;
  for (const auto& insn : p.instructions()) {
    if (insn.code == (BPF_RET | BPF_K)) {
      has_allow = has_allow || insn.k == 0x7fff0000u;            // SECCOMP_RET_ALLOW
      has_eperm = has_eperm || insn.k == (0x00050000u | EPERM);  // SECCOMP_RET_ERRNO|EPERM
    }
  }
  EXPECT_TRUE(has_allow);
  EXPECT_TRUE(has_eperm);
}

TEST(SeccompTest, CachedProgramIsBuiltOncePerProfile) {
  const SeccompProgram& a = SeccompProgram::Cached(SeccompProfile::kRuntimeDefault);
  EXPECT_EQ(&a, &SeccompProgram::Cached(SeccompProfile::kRuntimeDefault));
  SeccompProgram built = SeccompProgram::Build(SeccompProfile::kRuntimeDefault);
  ASSERT_EQ(a.instructions().size(), built.instructions().size());
  for (size_t i = 0; i < built.instructions().size(); ++i) {
    EXPECT_EQ(a.instructions()[i].code, built.instructions()[i].code) << i;
    EXPECT_EQ(a.instructions()[i].k, built.instructions()[i].k) << i;
  }
  EXPECT_TRUE(SeccompProgram::Cached(SeccompProfile::kUnconfined).empty());
}

TEST(LaunchContainerTest, InvalidSpecIsRejectedBeforeAnythingStarts) {
  ContainerSpec s = ValidSpec();
  s.argv.clear();
  try {
    LaunchContainer(s);
    FAIL() << "expected Invalid";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalid);
  }
}

TEST(ContainerSpecValidation, DetachingMountsNeedsANewMountNamespace) {
  ContainerSpec s;
  s.name = "c";
  s.argv = {"true"};
  s.new_mount_ns = false;
  s.detach_mounts = {"relative"};
  try {
    ValidateContainerSpec(s);
    FAIL() << "expected Invalid";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(),
                ::testing::HasSubstr("detachMounts: detaching mounts needs a new mount namespace"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("detachMounts[0]: must be an absolute path"));
  }
}

}  // namespace
}  // namespace kin
