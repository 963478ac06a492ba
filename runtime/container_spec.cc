#include "runtime/container_spec.h"

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <sstream>

#include "base/error.h"
#include "base/strings.h"

namespace kin {

namespace {

// Index = capability number (linux/capability.h), up to CAP_CHECKPOINT_RESTORE.
constexpr const char* kCapabilityNames[] = {
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
};
constexpr int kKnownCapabilities = sizeof(kCapabilityNames) / sizeof(kCapabilityNames[0]);

std::string Upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

bool IsAll(const std::string& name) { return Upper(name) == "ALL" || Upper(name) == "CAP_ALL"; }

// Quotes an argv word only when it needs it, so the rendering stays readable.
std::string Word(const std::string& s) {
  if (!s.empty() && s.find_first_of(" \t\n\"'\\$") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace

const std::vector<std::string>& DefaultCapabilityNames() {
  static const std::vector<std::string> names = {
      "CHOWN",   "DAC_OVERRIDE", "FSETID",           "FOWNER",
      "MKNOD",   "NET_RAW",      "SETGID",           "SETUID",
      "SETFCAP", "SETPCAP",      "NET_BIND_SERVICE", "SYS_CHROOT",
      "KILL",    "AUDIT_WRITE"};
  return names;
}

std::optional<int> CapabilityNumber(const std::string& name) {
  std::string n = Upper(name);
  if (n.rfind("CAP_", 0) == 0) n = n.substr(4);
  for (int i = 0; i < kKnownCapabilities; ++i) {
    if (n == kCapabilityNames[i]) return i;
  }
  return std::nullopt;
}

uint64_t CapabilityMask(const ContainerSpec& spec, int last_cap) {
  last_cap = std::min(last_cap, 63);
  uint64_t all = last_cap >= 63 ? ~0ull : (1ull << (last_cap + 1)) - 1;
  auto bit = [&](const std::string& name, const std::string& field) -> uint64_t {
    if (IsAll(name)) return all;
    auto n = CapabilityNumber(name);
    if (!n) {
      throw Error::Invalid("unknown capability \"" + name + "\"")
          .WithCause({"FieldValueNotSupported", "unknown capability \"" + name + "\"", field});
    }
    return 1ull << *n;
  };
  uint64_t mask = 0;
  for (const auto& c : DefaultCapabilityNames()) mask |= bit(c, "defaults");
  for (const auto& c : spec.cap_drop) mask &= ~bit(c, "capabilities.drop");
  // Adds win over drops, as in containerd: drop ALL + add NET_BIND_SERVICE keeps one.
  for (const auto& c : spec.cap_add) mask |= bit(c, "capabilities.add");
  return mask & all;
}

CpuQuota MilliCpuToQuota(int64_t millicores) {
  CpuQuota q;
  if (millicores <= 0) return q;
  constexpr int64_t kMinQuotaUs = 1000;
  q.quota_us = std::max(millicores * q.period_us / 1000, kMinQuotaUs);
  return q;
}

std::vector<SeccompRule> SeccompRules(SeccompProfile profile) {
  if (profile == SeccompProfile::kUnconfined) return {};
  std::vector<SeccompRule> rules;
  for (const char* s : {"acct",
                        "add_key",
                        "bpf",
                        "delete_module",
                        "finit_module",
                        "fsconfig",
                        "fsmount",
                        "fsopen",
                        "fspick",
                        "init_module",
                        "kexec_file_load",
                        "kexec_load",
                        "keyctl",
                        "lookup_dcookie",
                        "mount",
                        "mount_setattr",
                        "move_mount",
                        "name_to_handle_at",
                        "open_by_handle_at",
                        "open_tree",
                        "perf_event_open",
                        "pivot_root",
                        "quotactl",
                        "reboot",
                        "request_key",
                        "setns",
                        "swapoff",
                        "swapon",
                        "syslog",
                        "umount2",
                        "userfaultfd",
                        "vhangup"}) {
    rules.push_back({s, EPERM, 0});
  }
  // Namespace creation. CLONE_NEWTIME (0x80) shares bits with clone's exit
  // signal, so it is only matched for unshare.
  constexpr uint64_t kCloneNamespaces = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS |
                                        CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET;
  rules.push_back({"unshare", EPERM, kCloneNamespaces | 0x80 /* CLONE_NEWTIME */});
  rules.push_back({"clone", EPERM, kCloneNamespaces});
  // clone3 passes its flags in memory, out of seccomp's reach: answer ENOSYS
  // so libc falls back to clone, whose flags can be checked (Docker does this).
  rules.push_back({"clone3", ENOSYS, 0});
  return rules;
}

void ValidateContainerSpec(const ContainerSpec& spec) {
  std::vector<Cause> causes;
  auto bad = [&](const std::string& field, const std::string& msg,
                 const std::string& reason = "FieldValueInvalid") {
    causes.push_back({reason, msg, field});
  };
  auto absolute = [&](const std::string& field, const std::string& path) {
    if (!path.empty() && path[0] != '/') bad(field, "must be an absolute path: \"" + path + "\"");
  };
  if (spec.name.empty()) bad("name", "Required value", "FieldValueRequired");
  if (spec.argv.empty() || spec.argv[0].empty()) {
    bad("command", "Required value", "FieldValueRequired");
  }
  for (size_t i = 0; i < spec.env.size(); ++i) {
    size_t eq = spec.env[i].find('=');
    if (eq == std::string::npos || eq == 0) {
      bad("env[" + std::to_string(i) + "]", "must be KEY=VALUE: \"" + spec.env[i] + "\"");
    }
  }
  absolute("workingDir", spec.working_dir);
  absolute("namespaces.network", spec.net_ns);
  absolute("namespaces.uts", spec.uts_ns);
  absolute("namespaces.ipc", spec.ipc_ns);
  absolute("namespaces.pid", spec.pid_ns);
  absolute("namespaces.mount", spec.mnt_ns);
  absolute("mountTemplate", spec.mount_template);
  if (!spec.mount_template.empty() && !spec.new_mount_ns) {
    bad("mountTemplate", "a mount template is only copied into a new mount namespace");
  }
  if (!spec.uts_ns.empty() && spec.new_uts_ns) {
    bad("namespaces.uts", "cannot both join a UTS namespace and create one");
  }
  if (!spec.ipc_ns.empty() && spec.new_ipc_ns) {
    bad("namespaces.ipc", "cannot both join an IPC namespace and create one");
  }
  if (!spec.pid_ns.empty() && spec.new_pid_ns) {
    bad("namespaces.pid", "cannot both join a PID namespace and create one");
  }
  if (!spec.mnt_ns.empty()) {
    if (spec.new_mount_ns)
      bad("namespaces.mount", "cannot both join a mount namespace and create one");
    if (spec.rootfs)
      bad("rootfs", "a root filesystem cannot be set up when joining a mount namespace");
  }
  if (spec.setsid_ctty && spec.stdin_fd < 0) {
    bad("stdin", "a controlling terminal needs a terminal as stdin");
  }
  for (size_t i = 0; i < spec.cgroup_procs_files.size(); ++i) {
    absolute("cgroupProcsFiles[" + std::to_string(i) + "]", spec.cgroup_procs_files[i]);
  }
  if (!spec.hostname.empty()) {
    if (!spec.new_uts_ns) bad("hostname", "setting the hostname needs a new UTS namespace");
    if (spec.hostname.size() > 64) bad("hostname", "must be no more than 64 characters");
  }
  for (const auto& [field, list] :
       {std::pair{"capabilities.add", &spec.cap_add}, {"capabilities.drop", &spec.cap_drop}}) {
    for (const auto& c : *list) {
      if (!IsAll(c) && !CapabilityNumber(c)) {
        bad(field, "unknown capability \"" + c + "\"", "FieldValueNotSupported");
      }
    }
  }
  if (spec.resources.memory_bytes < 0) bad("resources.limits.memory", "must not be negative");
  if (spec.resources.memory_bytes > 0 && spec.resources.memory_bytes < 4096) {
    bad("resources.limits.memory", "must be at least one page (4096 bytes)");
  }
  if (spec.resources.cpu_millicores < 0) bad("resources.limits.cpu", "must not be negative");
  if (spec.resources.pids_max < 0) bad("resources.limits.pids", "must not be negative");
  if (!spec.mounts.empty() && !spec.new_mount_ns) {
    bad("mounts", "bind mounts need a new mount namespace");
  }
  for (size_t i = 0; i < spec.mounts.size(); ++i) {
    std::string f = "mounts[" + std::to_string(i) + "]";
    if (spec.mounts[i].source.empty()) bad(f + ".source", "Required value", "FieldValueRequired");
    if (spec.mounts[i].target.empty()) bad(f + ".target", "Required value", "FieldValueRequired");
    absolute(f + ".source", spec.mounts[i].source);
    absolute(f + ".target", spec.mounts[i].target);
  }
  if (!spec.detach_mounts.empty() && !spec.new_mount_ns) {
    bad("detachMounts", "detaching mounts needs a new mount namespace");
  }
  for (size_t i = 0; i < spec.detach_mounts.size(); ++i) {
    absolute("detachMounts[" + std::to_string(i) + "]", spec.detach_mounts[i]);
  }
  if (spec.rootfs) {
    const RootfsSpec& r = *spec.rootfs;
    if (!spec.new_mount_ns) bad("rootfs", "a root filesystem needs a new mount namespace");
    if (r.lower_dirs.empty()) {
      bad("rootfs.lowerDirs", "Required value", "FieldValueRequired");
    }
    // overlayfs splits its options at ',' and lowerdir at ':'.
    auto overlay_path = [&](const std::string& field, const std::string& path) {
      if (path.empty()) return bad(field, "Required value", "FieldValueRequired");
      absolute(field, path);
      if (path.find_first_of(",:") != std::string::npos) {
        bad(field, "must not contain ',' or ':': \"" + path + "\"");
      }
    };
    for (size_t i = 0; i < r.lower_dirs.size(); ++i) {
      overlay_path("rootfs.lowerDirs[" + std::to_string(i) + "]", r.lower_dirs[i]);
    }
    if (!r.upper_dir.empty() || !r.work_dir.empty()) {
      overlay_path("rootfs.upperDir", r.upper_dir);
      overlay_path("rootfs.workDir", r.work_dir);
    }
  }
  absolute("logPath", spec.log_path);
  if (causes.empty()) return;
  std::string msg = "container `" + spec.name + "` is invalid: ";
  for (size_t i = 0; i < causes.size(); ++i) {
    msg += (i ? ", " : "") + causes[i].field + ": " + causes[i].message;
  }
  Error e = Error::Invalid(msg);
  for (auto& c : causes) e.WithCause(std::move(c));
  throw e;
}

std::string RenderContainerSpec(const ContainerSpec& spec) {
  std::ostringstream out;
  std::vector<std::string> words;
  for (const auto& a : spec.argv) words.push_back(Word(a));
  out << "container " << spec.name << "\n";
  out << "argv " << Join(words, " ") << "\n";
  for (const auto& e : spec.env) out << "env " << e << "\n";
  out << "workdir " << (spec.working_dir.empty() ? "/" : spec.working_dir) << "\n";
  if (!spec.net_ns.empty()) out << "join net " << spec.net_ns << "\n";
  if (!spec.uts_ns.empty()) out << "join uts " << spec.uts_ns << "\n";
  if (!spec.ipc_ns.empty()) out << "join ipc " << spec.ipc_ns << "\n";
  if (!spec.pid_ns.empty()) out << "join pid " << spec.pid_ns << "\n";
  if (!spec.mnt_ns.empty()) out << "join mnt " << spec.mnt_ns << "\n";
  if (!spec.mount_template.empty()) out << "mount template " << spec.mount_template << "\n";
  std::vector<std::string> fresh;
  if (spec.new_mount_ns) fresh.push_back("mnt");
  if (spec.new_pid_ns) fresh.push_back("pid");
  if (spec.new_uts_ns) fresh.push_back("uts");
  if (spec.new_ipc_ns) fresh.push_back("ipc");
  if (!fresh.empty()) out << "new " << Join(fresh, ",") << "\n";
  if (!spec.hostname.empty()) out << "hostname " << spec.hostname << "\n";
  out << "user " << (spec.uid ? std::to_string(*spec.uid) : "0") << ":"
      << (spec.gid ? std::to_string(*spec.gid) : "0");
  for (gid_t g : spec.supplemental_groups) out << "," << g;
  out << "\n";
  char mask[32];
  snprintf(mask, sizeof mask, "%016llx", static_cast<unsigned long long>(CapabilityMask(spec)));
  out << "capabilities " << mask << "\n";
  out << "seccomp "
      << (spec.seccomp == SeccompProfile::kRuntimeDefault ? "RuntimeDefault" : "Unconfined")
      << "\n";
  out << "no_new_privs " << (spec.no_new_privs ? "true" : "false") << "\n";
  if (spec.resources.memory_bytes > 0) out << "memory " << spec.resources.memory_bytes << "\n";
  if (spec.resources.cpu_millicores > 0) {
    CpuQuota q = MilliCpuToQuota(spec.resources.cpu_millicores);
    out << "cpu " << spec.resources.cpu_millicores << "m quota " << q.quota_us << "/" << q.period_us
        << "\n";
  }
  if (spec.resources.pids_max > 0) out << "pids " << spec.resources.pids_max << "\n";
  for (const auto& m : spec.mounts) {
    out << "bind " << m.source << " -> " << m.target << (m.read_only ? " ro" : " rw") << "\n";
  }
  for (const auto& d : spec.detach_mounts) out << "detach " << d << "\n";
  if (spec.rootfs) {
    out << "rootfs " << Join(spec.rootfs->lower_dirs, ":");
    if (!spec.rootfs->upper_dir.empty()) {
      out << " upper " << spec.rootfs->upper_dir << " work " << spec.rootfs->work_dir;
    }
    out << (spec.rootfs->read_only ? " ro" : " rw") << "\n";
  }
  out << "log " << (spec.log_path.empty() ? "/dev/null" : spec.log_path) << "\n";
  return out.str();
}

}  // namespace kin
