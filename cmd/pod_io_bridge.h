// The bridge between the API server's pod I/O (apiserver/pod_io.h: logs,
// exec, attach, port-forward) and the node agents that run the pods.
//
// A request names a pod; the bridge reads it through the in-process client,
// finds the node agent of spec.nodeName, asks it for the container's files
// (NodeAgent::IoTarget) and then works from those: the CRI log
// (runtime/cri_log.h), an exec'd process in the container's namespaces
// (runtime/container_io.h), a socket dialled inside the pod's network
// namespace. Errors are the kubelet's: NotFound, BadRequest ("container
// \"c\" in pod \"p\" is not running").
//
// Thread-safety: thread-safe; requests run on the API server's threads.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "apiserver/pod_io.h"
#include "client/client.h"

namespace kin {
class NodeAgent;
}

namespace kin::cmd {

// `agent_for_node` returns the agent of a node, or nullptr.
std::unique_ptr<apiserver::PodIo> MakePodIoBridge(
    Client& client, std::function<NodeAgent*(const std::string& node)> agent_for_node);

}  // namespace kin::cmd
