// Servers kin serve runs inside pods' network namespaces, so that system
// pods (the kube-dns pods, the Ingress controller's) answer without a
// process of their own: their container (a built-in image) only holds the
// pod, and kin serve opens the sockets in the pod's namespace.
//
// PodServers is a per-node component (cmd/cluster_runtime.h): for each pod
// bound to its node whose first container runs `image_repo` (any tag or
// digest), once the pod has its sandbox (an IP, its namespace on disk) and
// has not finished, it calls `start` and keeps what that returns; it drops
// it (its destructor stops the server and closes the sockets) when the pod
// goes, finishes, or its namespace is replaced (a restarted node makes new
// sandboxes under the same names: the namespace's inode tells them apart).
// A `start` that throws, or a namespace not there yet, is retried with the
// queue's back-off.
//
// Thread-safety: Start/Stop from one owner thread; Serving() from any.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "client/informer_factory.h"
#include "controllers/controller.h"
#include "controllers/work_queue.h"

namespace kin::controllers {

// A running server; destroying it stops it.
class PodServer {
 public:
  virtual ~PodServer() = default;
};

struct PodServersOptions {
  std::string component;   // for logs and name(): "cluster-dns", "ingress"
  std::string node;        // the node whose pods it serves
  std::string image_repo;  // "kin.dev/cluster-dns"
  // The pod's network namespace's name (the node agent's naming).
  std::function<std::string(const Json& pod)> pod_netns;
  // Starts the server of `pod` in the network namespace `netns` (a name
  // under /run/netns); throws kin::Error when it cannot (retried).
  std::function<std::unique_ptr<PodServer>(const Json& pod, const std::string& netns)> start;
};

// Whether the pod's first container runs `repo` (any tag or digest).
bool PodRunsImage(const Json& pod, const std::string& repo);

class PodServers : public Controller {
 public:
  PodServers(SharedInformerFactory& informers, PodServersOptions opts);
  ~PodServers() override;
  std::string name() const override { return opts_.component + "/" + opts_.node; }
  void Start() override;
  // Stops every server (the pods stay).
  void Stop() override;

  // The pods served now, by key ("kube-system/coredns-..."), for tests.
  std::vector<std::string> Serving() const;

 private:
  struct Running {
    std::string uid;
    ino_t netns_inode = 0;
    std::unique_ptr<PodServer> server;
  };
  Result Sync(const std::string& key);

  PodServersOptions opts_;
  Informer& pods_;
  WorkQueue queue_;
  ReconcileWorkers workers_;
  InformerSubscriptions subscriptions_;
  StartStopOnce run_state_;
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Running>> servers_;
};

}  // namespace kin::controllers
