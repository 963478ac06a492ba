// NodeControl: kin's own operations on a cluster's fake nodes, which no
// Kubernetes API has. `kin node stop NODE` simulates a crashed machine (its
// agent stops, its containers are killed, its link goes down) and `kin node
// start NODE` boots it again, so failover can be tested.
//
// The API server serves them to authenticated clients at
//   POST /kin/v1alpha1/nodes/NAME/stop
//   POST /kin/v1alpha1/nodes/NAME/start
// answering 200 with a Success Status, 404 for an unknown node, 409 when the
// node already is in that state, 503 when the server runs no nodes.
//
// Thread-safety: implementations are thread-safe.
#pragma once

#include <string>

namespace kin::apiserver {

class NodeControl {
 public:
  virtual ~NodeControl() = default;
  virtual void StopNode(const std::string& node) = 0;
  virtual void StartNode(const std::string& node) = 0;
};

}  // namespace kin::apiserver
