// e2e: storage on a real two-node cluster with real kubectl 1.33, as kind
// ships it: the default StorageClass `standard` (rancher.io/local-path,
// WaitForFirstConsumer, Delete). A claim and a pod that writes a file; the
// pod deleted, a new pod on the same claim reads the file (on the same
// node, held there by the volume's node affinity); `kubectl get pv,pvc,sc`
// with upstream's columns; `standard` refuses to grow a claim, a class with
// allowVolumeExpansion grows it (capacity, Events, the class's quota
// charged and refusing more) and refuses a shrink; a pod naming a missing claim stays Pending with
// kube-scheduler's message; a StatefulSet's volumeClaimTemplates give each
// replica a Bound claim that outlives the set; deleting a claim removes its
// volume and directory; nothing is left after `kin cluster delete`.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "base/yaml.h"
#include "testing/e2e_cluster.h"
#include "testing/kernel_fixture.h"

namespace kin {
namespace {

using Cluster = testing::E2eCluster;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

const char kClaim[] = R"(apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 64Mi
)";

std::string PodOnClaim(const std::string& name, const std::string& claim,
                       const std::string& script) {
  return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name +
         "\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n"
         "    image: busybox\n    command: [sh, -c, '" +
         script +
         "']\n    volumeMounts:\n    - {name: vol, mountPath: /data}\n  volumes:\n"
         "  - name: vol\n    persistentVolumeClaim: {claimName: " +
         claim + "}\n";
}

const char kStatefulSet[] = R"(apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: busybox
        command: [sh, -c, 'hostname > /www/name; sleep 3600']
        volumeMounts:
        - {name: www, mountPath: /www}
  volumeClaimTemplates:
  - metadata:
      name: www
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 16Mi
)";

std::string Phase(const Json& obj) {
  return obj.is_null() ? "" : obj["status"].value("phase", "");
}

class StorageE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::RequireRoot()) GTEST_SKIP() << "needs root";
  }
};

TEST_F(StorageE2E, ClaimsVolumesClassesAndStatefulSetTemplates) {
  Cluster c('v');
  ASSERT_TRUE(c.Create({"--nodes", "2"})) << c.last_output();

  // The default class, as kind's.
  ASSERT_TRUE(Cluster::WaitFor([&] { return !c.GetJson({"sc", "standard"}).is_null(); }));
  std::string sc = c.Ok({"get", "sc"});
  EXPECT_NE(sc.find("NAME"), std::string::npos) << sc;
  for (const char* col : {"PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE",
                          "ALLOWVOLUMEEXPANSION", "AGE", "standard (default)",
                          "rancher.io/local-path", "Delete", "WaitForFirstConsumer", "false"}) {
    EXPECT_NE(sc.find(col), std::string::npos) << col << "\n" << sc;
  }

  // A claim waits for its first consumer.
  c.Apply(kClaim);
  EXPECT_EQ(c.GetJson({"pvc", "data"})["spec"].value("storageClassName", ""), "standard");
  ASSERT_TRUE(Cluster::WaitFor([&] {
    return c.Ok({"get", "events"})
               .find("waiting for first consumer to be created before binding") !=
           std::string::npos;
  }));
  EXPECT_EQ(Phase(c.GetJson({"pvc", "data"})), "Pending");

  // A pod writes a file; the claim is provisioned on the pod's node.
  c.Apply(PodOnClaim("writer", "data", "echo hello > /data/file; sleep 3600"));
  Json writer = c.WaitPodReady("writer", "default", 60s);
  ASSERT_FALSE(writer.is_null()) << c.Log();
  Json pvc = c.GetJson({"pvc", "data"});
  EXPECT_EQ(Phase(pvc), "Bound");
  const std::string volume = pvc["spec"].value("volumeName", "");
  const std::string node = writer["spec"].value("nodeName", "");
  EXPECT_EQ(pvc["metadata"]["annotations"].value("volume.kubernetes.io/selected-node", ""), node);
  Json pv = c.GetJson({"pv", volume});
  ASSERT_FALSE(pv.is_null());
  const std::string dir = pv["spec"]["hostPath"].value("path", "");
  EXPECT_EQ(dir.rfind(c.StateDir() + "/nodes/" + node + "/local-path-provisioner/", 0), 0u)
      << dir;
  // The container is Ready as soon as it runs; its echo may come a moment later.
  EXPECT_TRUE(Cluster::WaitFor([&] { return fs::exists(dir + "/file"); }, 10s));
  EXPECT_EQ(testing::ReadFile(dir + "/file"), "hello\n");

  std::string pvs = c.Ok({"get", "pv"});
  for (const char* col : {"CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM",
                          "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "REASON", "64Mi", "RWO",
                          "Delete", "Bound", "default/data", "standard"}) {
    EXPECT_NE(pvs.find(col), std::string::npos) << col << "\n" << pvs;
  }
  std::string pvcs = c.Ok({"get", "pvc"});
  for (const char* col : {"NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS",
                          "AGE", "data", "Bound", "64Mi", "RWO", "standard"}) {
    EXPECT_NE(pvcs.find(col), std::string::npos) << col << "\n" << pvcs;
  }
  EXPECT_NE(pvcs.find(volume), std::string::npos) << pvcs;
  std::string all = c.Ok({"get", "pv,pvc,sc"});
  for (const std::string& name : {"persistentvolume/" + volume,
                                  std::string("persistentvolumeclaim/data"),
                                  std::string("storageclass.storage.k8s.io/standard")}) {
    EXPECT_NE(all.find(name), std::string::npos) << name << "\n" << all;
  }

  // The data outlives the pod: a new pod on the claim reads it, on the same node.
  c.Ok({"delete", "pod", "writer", "--wait=true"});
  c.Apply(PodOnClaim("reader", "data", "sleep 3600"));
  Json reader = c.WaitPodReady("reader", "default", 60s);
  ASSERT_FALSE(reader.is_null()) << c.Log();
  EXPECT_EQ(reader["spec"].value("nodeName", ""), node);
  EXPECT_EQ(c.Ok({"exec", "reader", "--", "cat", "/data/file"}), "hello\n");

  // Expansion: `standard`, as kind's, does not allow it (403 from the
  // PersistentVolumeClaimResize admission); a class that does grows the
  // volume under a running pod, as the external-resizer would.
  CommandResult fixed = c.Kubectl(
      {"patch", "pvc", "data", "-p", R"({"spec":{"resources":{"requests":{"storage":"128Mi"}}}})"});
  EXPECT_FALSE(fixed.status.success());
  EXPECT_NE(fixed.err.find("Error from server (Forbidden): persistentvolumeclaims \"data\" is "
                           "forbidden: only dynamically provisioned pvc can be resized and the "
                           "storageclass that provisions the pvc must support resize"),
            std::string::npos)
      << fixed.err;
  c.Apply(R"(apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: expandable}
provisioner: rancher.io/local-path
volumeBindingMode: WaitForFirstConsumer
allowVolumeExpansion: true
)");
  std::string classes = c.Ok({"get", "sc", "expandable"});
  EXPECT_NE(classes.find("true"), std::string::npos) << classes;
  std::string big_claim = kClaim;
  big_claim.replace(big_claim.find("name: data"), 10, "name: big");
  big_claim += "  storageClassName: expandable\n";
  c.Apply(big_claim);
  c.Apply(PodOnClaim("grower", "big", "echo kept > /data/file; sleep 3600"));
  ASSERT_FALSE(c.WaitPodReady("grower", "default", 60s).is_null()) << c.Log();
  // A quota on the class: the growth is charged, and refused past it.
  c.Ok({"create", "quota", "grow-q",
        "--hard=expandable.storageclass.storage.k8s.io/requests.storage=128Mi"});
  auto class_used = [&] {
    return c.GetJson({"quota", "grow-q"})["status"]["used"].value(
        "expandable.storageclass.storage.k8s.io/requests.storage", "");
  };
  ASSERT_TRUE(Cluster::WaitFor([&] { return class_used() == "64Mi"; })) << class_used();
  CommandResult over = c.Kubectl(
      {"patch", "pvc", "big", "-p", R"({"spec":{"resources":{"requests":{"storage":"256Mi"}}}})"});
  EXPECT_FALSE(over.status.success());
  EXPECT_NE(over.err.find("persistentvolumeclaims \"big\" is forbidden: exceeded quota: grow-q, "
                          "requested: expandable.storageclass.storage.k8s.io/requests.storage="
                          "192Mi, used: expandable.storageclass.storage.k8s.io/requests.storage="
                          "64Mi, limited: expandable.storageclass.storage.k8s.io/requests.storage="
                          "128Mi"),
            std::string::npos)
      << over.err;
  c.Ok({"patch", "pvc", "big", "-p", R"({"spec":{"resources":{"requests":{"storage":"128Mi"}}}})"});
  EXPECT_EQ(class_used(), "128Mi");
  ASSERT_TRUE(Cluster::WaitFor([&] {
    return c.GetJson({"pvc", "big"})["status"]["capacity"].value("storage", "") == "128Mi";
  }));
  const std::string big_volume = c.GetJson({"pvc", "big"})["spec"].value("volumeName", "");
  EXPECT_EQ(c.GetJson({"pv", big_volume})["spec"]["capacity"].value("storage", ""), "128Mi");
  std::string grown = c.Ok({"get", "pvc", "big"});
  EXPECT_NE(grown.find("128Mi"), std::string::npos) << grown;
  EXPECT_TRUE(Cluster::WaitFor([&] {
    std::string d = c.Ok({"describe", "pvc", "big"});
    return d.find("VolumeResizeSuccessful") != std::string::npos &&
           d.find("External resizer is resizing volume " + big_volume) != std::string::npos;
  })) << c.Ok({"describe", "pvc", "big"});
  EXPECT_EQ(c.Ok({"exec", "grower", "--", "cat", "/data/file"}), "kept\n");
  CommandResult shrunk = c.Kubectl(
      {"patch", "pvc", "big", "-p", R"({"spec":{"resources":{"requests":{"storage":"64Mi"}}}})"});
  EXPECT_FALSE(shrunk.status.success());
  EXPECT_NE(shrunk.err.find("spec.resources.requests.storage: Forbidden: field can not be less "
                            "than status.capacity"),
            std::string::npos)
      << shrunk.err;
  c.Ok({"delete", "pod", "grower", "--wait=true"});
  c.Ok({"delete", "pvc", "big", "--wait=true"});
  c.Ok({"delete", "quota", "grow-q"});

  // A pod naming a claim that does not exist stays Pending.
  c.Apply(PodOnClaim("orphan", "nope", "sleep 3600"));
  ASSERT_TRUE(Cluster::WaitFor([&] {
    Json p = c.GetJson({"pod", "orphan"});
    for (const auto& cond : p["status"].value("conditions", Json::array())) {
      if (cond.value("type", "") == "PodScheduled" &&
          cond.value("message", "").find("persistentvolumeclaim \"nope\" not found") !=
              std::string::npos) {
        return true;
      }
    }
    return false;
  }));
  EXPECT_EQ(Phase(c.GetJson({"pod", "orphan"})), "Pending");
  c.Ok({"delete", "pod", "orphan", "--wait=true"});

  // StatefulSet claim templates: one Bound claim per replica, kept when the set goes.
  c.Apply(kStatefulSet);
  std::string rolled = c.Ok({"rollout", "status", "sts/web", "--timeout=90s"});
  EXPECT_NE(rolled.find("roll out complete"), std::string::npos) << rolled << c.Log();
  for (const char* claim : {"www-web-0", "www-web-1"}) {
    Json p = c.GetJson({"pvc", claim});
    EXPECT_EQ(Phase(p), "Bound") << claim;
    EXPECT_EQ(p["metadata"]["labels"].value("app", ""), "web") << claim;
  }
  EXPECT_TRUE(Cluster::WaitFor(
      [&] { return c.Kubectl({"exec", "web-1", "--", "cat", "/www/name"}).out == "web-1\n"; },
      10s));
  c.Ok({"delete", "sts", "web", "--wait=true"});
  EXPECT_TRUE(Cluster::WaitFor([&] {
    return c.GetJson({"pods", "-l", "app=web"})["items"].empty();
  }));
  EXPECT_EQ(Phase(c.GetJson({"pvc", "www-web-0"})), "Bound");

  // Reclaim Delete: the claim goes, then its volume and directory.
  c.Ok({"delete", "pod", "reader", "--wait=true"});
  c.Ok({"delete", "pvc", "data", "--wait=true"});
  EXPECT_TRUE(Cluster::WaitFor([&] { return c.GetJson({"pv", volume}).is_null(); }));
  EXPECT_FALSE(fs::exists(dir));

  const std::string state = c.StateDir();
  ASSERT_TRUE(c.Delete()) << c.last_output();
  EXPECT_EQ(c.Leftovers(), std::vector<std::string>{});
  EXPECT_FALSE(fs::exists(state));
}

}  // namespace
}  // namespace kin
