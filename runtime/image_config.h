// ImageConfig — what an image contributes to a container, as plain data.
//
// The image store (image_store.h) resolves an image reference to one of
// these; the pod translator (pod_spec.h) merges it with the container's
// command, args, env, workingDir and securityContext the way a container
// runtime does (command replaces Entrypoint and drops Cmd; args replaces Cmd).
//
// Thread-safety: a plain value type.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace kin {

struct ImageConfig {
  std::string reference;  // as the pod names it, normalized: "registry.k8s.io/pause:3.9"
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;  // "KEY=VALUE", overridden by the container's env
  std::string working_dir;
  std::string user;  // "uid", "uid:gid" (names are resolved in the rootfs, when there is one)

  // Pulled from a registry (registry_client.h): the repo digest
  // ("docker.io/library/busybox@sha256:...", a container status's imageID).
  // Empty for built-in, host-mapped and loaded images, which are never pulled.
  std::string image_id;

  // The root filesystem's read-only layers, lowest first (overlayfs lowerdir
  // order reversed). Empty: the container sees the host's root filesystem
  // (built-in images that are kin itself, and host-mapped images).
  std::vector<std::string> layers;

  // argv[0] values that stand for a program outside the container's view:
  // built-in images map "/agnhost" to {"<kin binary>", "agnhost"} and
  // "/pause" to {"<kin binary>", "agnhost", "pause"}. Applied after the merge.
  std::vector<std::pair<std::string, std::vector<std::string>>> command_aliases;
};

}  // namespace kin
