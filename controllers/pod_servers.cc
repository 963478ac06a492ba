#include "controllers/pod_servers.h"

#include <sys/stat.h>

#include "base/error.h"
#include "base/log.h"
#include "client/object.h"
#include "client/resources.h"

namespace kin::controllers {
namespace {

using object::Field;
using object::Str;

// The inode of a named network namespace (0: there is none).
ino_t NetnsInode(const std::string& name) {
  struct stat st {};
  if (::stat(("/run/netns/" + name).c_str(), &st) != 0) return 0;
  return st.st_ino;
}

}  // namespace

bool PodRunsImage(const Json& pod, const std::string& repo) {
  const Json& containers = Field(Field(pod, "spec"), "containers");
  if (!containers.is_array() || containers.empty()) return false;
  std::string image = Str(containers[0], "image");
  return image == repo || image.rfind(repo + ":", 0) == 0 || image.rfind(repo + "@", 0) == 0;
}

PodServers::PodServers(SharedInformerFactory& informers, PodServersOptions opts)
    : opts_(std::move(opts)),
      pods_(informers.For(PodsResource())),
      workers_(opts_.component + "/" + opts_.node, queue_,
               [this](const std::string& key) { return Sync(key); }) {
  if (!opts_.pod_netns || !opts_.start) {
    throw Error::Invalid(opts_.component + " for " + opts_.node +
                         ": no pod namespaces or server to start");
  }
}

PodServers::~PodServers() { Stop(); }

void PodServers::Start() {
  if (!run_state_.TryStart()) return;
  subscriptions_.Add(pods_, HandlersFrom([this](const Json* old, const Json* now) {
                       for (const Json* p : {old, now}) {
                         if (!p || !PodRunsImage(*p, opts_.image_repo)) continue;
                         if (Str(Field(*p, "spec"), "nodeName") != opts_.node) continue;
                         queue_.Add(object::Key(*p));
                         return;
                       }
                     }));
  workers_.Start(1, {&pods_});
}

void PodServers::Stop() {
  if (!run_state_.TryStop()) return;
  workers_.Stop();
  subscriptions_.RemoveAll();
  std::map<std::string, std::unique_ptr<Running>> servers;
  {
    std::lock_guard lock(mu_);
    servers.swap(servers_);
  }
  servers.clear();  // each server stops and closes its sockets
}

std::vector<std::string> PodServers::Serving() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [key, r] : servers_) out.push_back(key);
  return out;
}

Result PodServers::Sync(const std::string& key) {
  ObjectPtr pod = pods_.LookupKey(key);
  std::string phase = pod ? Str(Field(*pod, "status"), "phase") : "";
  bool want = pod && PodRunsImage(*pod, opts_.image_repo) &&
              Str(Field(*pod, "spec"), "nodeName") == opts_.node &&
              !Str(Field(*pod, "status"), "podIP").empty() && phase != "Succeeded" &&
              phase != "Failed";
  std::string netns;
  ino_t inode = 0;
  if (want) {
    netns = opts_.pod_netns(*pod);
    inode = NetnsInode(netns);
    if (inode == 0) return Result::Retry();  // the sandbox is being made or went away
  }
  std::unique_ptr<Running> stale;
  {
    std::lock_guard lock(mu_);
    auto it = servers_.find(key);
    if (it != servers_.end() &&
        (!want || it->second->uid != object::Uid(*pod) || it->second->netns_inode != inode)) {
      stale = std::move(it->second);
      servers_.erase(it);
    }
    if (!want || servers_.count(key)) want = false;
  }
  if (stale) log::Info("{}: stopped serving in {}", opts_.component, key);
  stale.reset();
  if (!want) return Result::Done();

  auto running = std::make_unique<Running>();
  running->uid = object::Uid(*pod);
  running->netns_inode = inode;
  try {
    running->server = opts_.start(*pod, netns);
  } catch (const std::exception& e) {
    log::Warn("{}: cannot serve in {} (netns {}): {}", opts_.component, key, netns, e.what());
    return Result::Retry();
  }
  log::Info("{}: serving in {} (netns {})", opts_.component, key, netns);
  std::lock_guard lock(mu_);
  servers_[key] = std::move(running);
  return Result::Done();
}

}  // namespace kin::controllers
