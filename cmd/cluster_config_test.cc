#include "cmd/cluster_config.h"

#include <gtest/gtest.h>

#include <string>

#include "base/error.h"

namespace kin::cmd {
namespace {

const std::string kHeader = "apiVersion: kin.dev/v1alpha1\nkind: Cluster\n";

ClusterConfig Build(const std::string& text, std::optional<int> nodes = std::nullopt,
                    const std::string& name = "dev") {
  return BuildClusterConfig(name, nodes, text, "kin.yaml");
}

// The error BuildClusterConfig throws for `text`.
Error BuildError(const std::string& text, std::optional<int> nodes = std::nullopt,
                 const std::string& name = "dev") {
  try {
    Build(text, nodes, name);
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no error for:\n" << text;
  return Error::Internal("no error");
}

// The message of the one cause naming `field`, or "" (and a failure).
std::string CauseFor(const Error& e, const std::string& field) {
  std::string found;
  int count = 0;
  for (const Cause& c : e.causes()) {
    if (c.field == field) {
      found = c.message;
      ++count;
    }
  }
  EXPECT_EQ(count, 1) << "causes for " << field << " in: " << e.message();
  return found;
}

void ExpectInvalid(const std::string& text, const std::string& field, const std::string& message) {
  Error e = BuildError(text);
  EXPECT_EQ(e.code(), Code::kInvalid) << e.message();
  EXPECT_EQ(CauseFor(e, field), message) << e.message();
  EXPECT_NE(e.message().find("kin.yaml"), std::string::npos) << e.message();
  EXPECT_NE(e.message().find(field + ": " + message), std::string::npos) << e.message();
}

void ExpectInvalidContains(const std::string& text, const std::string& field,
                           const std::string& part) {
  Error e = BuildError(text);
  EXPECT_EQ(e.code(), Code::kInvalid) << e.message();
  EXPECT_NE(CauseFor(e, field).find(part), std::string::npos) << e.message();
}

std::map<std::string, std::string> BaseLabels(const std::string& node) {
  return {{"kubernetes.io/hostname", node},
          {"kubernetes.io/os", "linux"},
          {"kubernetes.io/arch", "amd64"},
          {"beta.kubernetes.io/os", "linux"},
          {"beta.kubernetes.io/arch", "amd64"}};
}

std::map<std::string, std::string> ControlPlaneLabels(const std::string& node) {
  auto labels = BaseLabels(node);
  labels["node-role.kubernetes.io/control-plane"] = "";
  labels["node.kubernetes.io/exclude-from-external-load-balancers"] = "";
  return labels;
}

const Json kControlPlaneTaint =
    Json::array({{{"key", "node-role.kubernetes.io/control-plane"}, {"effect", "NoSchedule"}}});

TEST(ClusterConfigTest, DefaultsAreOneUntaintedControlPlane) {
  ClusterConfig c = Build("");
  EXPECT_EQ(c.name, "dev");
  ASSERT_EQ(c.nodes.size(), 1u);
  const NodeConfig& n = c.nodes[0];
  EXPECT_EQ(n.name, "kin-dev-control-plane");
  EXPECT_EQ(n.role, "control-plane");
  EXPECT_EQ(n.labels, ControlPlaneLabels("kin-dev-control-plane"));
  EXPECT_EQ(n.taints, Json::array());  // kind untaints a single-node cluster
  EXPECT_EQ(n.capacity, DefaultNodeCapacity());
  EXPECT_EQ(n.capacity["memory"], "8Gi");
  EXPECT_EQ(n.ip, "172.18.0.2");
  EXPECT_EQ(n.pod_cidr, "10.244.0.0/24");
  EXPECT_EQ(c.pod_subnet, "10.244.0.0/16");
  EXPECT_EQ(c.service_subnet, "10.96.0.0/16");
  EXPECT_EQ(c.dns_ip, "10.96.0.10");
  EXPECT_EQ(c.underlay, "172.18.0.0/24");
  EXPECT_EQ(c.node_cidr_mask_size, 24);
  EXPECT_EQ(c.routing, "routed");
  EXPECT_TRUE(c.image_host_mappings.empty());
  // Comments only is an empty file, and --nodes 1 is the same.
  EXPECT_EQ(Build("# nothing here\n"), c);
  EXPECT_EQ(Build("", 1), c);
}

TEST(ClusterConfigTest, ThreeNodesFromFlag) {
  ClusterConfig c = Build("", 3);
  ASSERT_EQ(c.nodes.size(), 3u);
  EXPECT_EQ(c.nodes[0].name, "kin-dev-control-plane");
  EXPECT_EQ(c.nodes[1].name, "kin-dev-worker");
  EXPECT_EQ(c.nodes[2].name, "kin-dev-worker2");
  EXPECT_EQ(c.nodes[0].taints, kControlPlaneTaint);
  EXPECT_EQ(c.nodes[0].labels, ControlPlaneLabels("kin-dev-control-plane"));
  for (int i = 1; i < 3; ++i) {
    EXPECT_EQ(c.nodes[i].role, "worker");
    EXPECT_EQ(c.nodes[i].labels, BaseLabels(c.nodes[i].name));
    EXPECT_EQ(c.nodes[i].taints, Json::array());
  }
  EXPECT_EQ(c.nodes[1].ip, "172.18.0.3");
  EXPECT_EQ(c.nodes[2].ip, "172.18.0.4");
  EXPECT_EQ(c.nodes[1].pod_cidr, "10.244.1.0/24");
  EXPECT_EQ(c.nodes[2].pod_cidr, "10.244.2.0/24");
  EXPECT_EQ(c.dns_ip, "10.96.0.10");
}

TEST(ClusterConfigTest, TenNodesFromFlag) {
  ClusterConfig c = Build("", 10, "big");
  ASSERT_EQ(c.nodes.size(), 10u);
  EXPECT_EQ(c.nodes[0].name, "kin-big-control-plane");
  for (int i = 1; i < 10; ++i) {
    std::string suffix = i == 1 ? "" : std::to_string(i);
    EXPECT_EQ(c.nodes[i].name, "kin-big-worker" + suffix);
    EXPECT_EQ(c.nodes[i].ip, "172.18.0." + std::to_string(i + 2));
    EXPECT_EQ(c.nodes[i].pod_cidr, "10.244." + std::to_string(i) + ".0/24");
    EXPECT_EQ(c.nodes[i].labels.at("kubernetes.io/hostname"), c.nodes[i].name);
  }
}

TEST(ClusterConfigTest, FullFile) {
  ClusterConfig c = Build(kHeader + R"(name: dev
nodes:
- role: worker
  labels: {tier: frontend, example.com/zone: a}
  capacity: {cpu: "4", memory: 16Gi, pods: "50", example.com/gpu: 1}
- role: control-plane
- role: worker
- role: control-plane
networking:
  podSubnet: 10.100.0.0/16
  serviceSubnet: 10.200.0.0/20
  nodeCidrMaskSize: 26
  routing: host-gw
  underlay: 192.168.50.0/28
images:
  hostMappings:
    "myorg/tools:dev": /
    busybox: /opt/busybox-root
)");
  EXPECT_EQ(c.name, "dev");
  ASSERT_EQ(c.nodes.size(), 4u);
  // Control-planes first, each role in file order.
  EXPECT_EQ(c.nodes[0].name, "kin-dev-control-plane");
  EXPECT_EQ(c.nodes[1].name, "kin-dev-control-plane2");
  EXPECT_EQ(c.nodes[2].name, "kin-dev-worker");
  EXPECT_EQ(c.nodes[3].name, "kin-dev-worker2");
  EXPECT_EQ(c.nodes[0].taints, kControlPlaneTaint);
  EXPECT_EQ(c.nodes[1].taints, kControlPlaneTaint);
  EXPECT_EQ(c.nodes[1].labels, ControlPlaneLabels("kin-dev-control-plane2"));
  auto labels = BaseLabels("kin-dev-worker");
  labels["tier"] = "frontend";
  labels["example.com/zone"] = "a";
  EXPECT_EQ(c.nodes[2].labels, labels);
  EXPECT_EQ(c.nodes[3].labels, BaseLabels("kin-dev-worker2"));
  EXPECT_EQ(c.nodes[2].capacity, (Json{{"cpu", "4"},
                                       {"memory", "16Gi"},
                                       {"pods", "50"},
                                       {"ephemeral-storage", "100Gi"},
                                       {"hugepages-2Mi", "0"},
                                       {"example.com/gpu", "1"}}));
  EXPECT_EQ(c.nodes[3].capacity, DefaultNodeCapacity());
  EXPECT_EQ(c.nodes[0].ip, "192.168.50.2");
  EXPECT_EQ(c.nodes[3].ip, "192.168.50.5");
  EXPECT_EQ(c.nodes[0].pod_cidr, "10.100.0.0/26");
  EXPECT_EQ(c.nodes[1].pod_cidr, "10.100.0.64/26");
  EXPECT_EQ(c.nodes[3].pod_cidr, "10.100.0.192/26");
  EXPECT_EQ(c.pod_subnet, "10.100.0.0/16");
  EXPECT_EQ(c.service_subnet, "10.200.0.0/20");
  EXPECT_EQ(c.dns_ip, "10.200.0.10");
  EXPECT_EQ(c.underlay, "192.168.50.0/28");
  EXPECT_EQ(c.node_cidr_mask_size, 26);
  EXPECT_EQ(c.routing, "host-gw");
  EXPECT_EQ(c.image_host_mappings,
            (std::map<std::string, std::string>{{"myorg/tools:dev", "/"},
                                                {"busybox", "/opt/busybox-root"}}));
}

TEST(ClusterConfigTest, HostGwWithDefaults) {
  ClusterConfig c = Build(kHeader + "networking:\n  routing: host-gw\n", 2);
  EXPECT_EQ(c.routing, "host-gw");
  ASSERT_EQ(c.nodes.size(), 2u);
  EXPECT_EQ(c.nodes[1].pod_cidr, "10.244.1.0/24");
}

TEST(ClusterConfigTest, NameFromFileWhenFlagEmpty) {
  EXPECT_EQ(BuildClusterConfig("", std::nullopt, kHeader + "name: web\n", "f").name, "web");
  EXPECT_EQ(BuildClusterConfig("", std::nullopt, "", "f").name, "kin");
  EXPECT_EQ(BuildClusterConfig("", std::nullopt, "", "f").nodes[0].name, "kin-kin-control-plane");
  // Equal names are fine.
  EXPECT_EQ(Build(kHeader + "name: dev\n").name, "dev");
}

TEST(ClusterConfigTest, YamlSyntaxErrorIsBadRequestNamingFileAndLine) {
  Error e = BuildError(kHeader + "nodes:\n- role: worker\n  labels: {a: b\n");
  EXPECT_EQ(e.code(), Code::kBadRequest);
  EXPECT_EQ(e.message().rfind("kin.yaml: ", 0), 0u) << e.message();
  EXPECT_NE(e.message().find("line"), std::string::npos) << e.message();
}

TEST(ClusterConfigTest, ApiVersionAndKind) {
  ExpectInvalid("kind: Cluster\n", "apiVersion", "Required value: must be \"kin.dev/v1alpha1\"");
  ExpectInvalid("apiVersion: kind.x-k8s.io/v1alpha4\nkind: Cluster\n", "apiVersion",
                "Unsupported value: \"kind.x-k8s.io/v1alpha4\": supported values: "
                "\"kin.dev/v1alpha1\"");
  ExpectInvalid("apiVersion: kin.dev/v1alpha1\nkind: Config\n", "kind",
                "Unsupported value: \"Config\": supported values: \"Cluster\"");
  ExpectInvalid("apiVersion: kin.dev/v1alpha1\n", "kind", "Required value: must be \"Cluster\"");
  ExpectInvalid("apiVersion: 1\nkind: Cluster\n", "apiVersion",
                "Invalid value: 1: must be a string");
  Error e = BuildError("- a\n- b\n");
  EXPECT_EQ(e.code(), Code::kInvalid);
}

TEST(ClusterConfigTest, UnknownFieldsAreRejected) {
  ExpectInvalid(kHeader + "nodes:\n- rol: worker\n- role: control-plane\n", "nodes[0].rol",
                "unknown field \"nodes[0].rol\"");
  ExpectInvalid(kHeader + "networkin: {}\n", "networkin", "unknown field \"networkin\"");
  ExpectInvalid(kHeader + "networking:\n  podSubnets: 10.0.0.0/8\n", "networking.podSubnets",
                "unknown field \"networking.podSubnets\"");
  ExpectInvalid(kHeader + "images:\n  mappings: {}\n", "images.mappings",
                "unknown field \"images.mappings\"");
}

TEST(ClusterConfigTest, ProxyMode) {
  EXPECT_EQ(Build("", 1).proxy_mode, "nftables");
  ClusterConfig c = Build(kHeader + "networking:\n  proxyMode: iptables\n", 2);
  EXPECT_EQ(c.proxy_mode, "iptables");
  EXPECT_EQ(ClusterConfig::FromJson(c.ToJson()), c);
  // State saved before the field existed reads as the default.
  Json old = c.ToJson();
  old.erase("proxyMode");
  EXPECT_EQ(ClusterConfig::FromJson(old).proxy_mode, "nftables");
  ExpectInvalid(kHeader + "networking:\n  proxyMode: ipvs\n", "networking.proxyMode",
                "Invalid value: \"ipvs\": this kernel has no IPVS (CONFIG_IP_VS is not set): use "
                "nftables (the default) or iptables");
  ExpectInvalid(kHeader + "networking:\n  proxyMode: userspace\n", "networking.proxyMode",
                "Unsupported value: \"userspace\": supported values: \"nftables\", \"iptables\"");
}

TEST(ClusterConfigTest, ExternalSubnet) {
  EXPECT_EQ(Build("", 1).external_subnet, "203.0.113.0/24");
  ClusterConfig c = Build(kHeader + "networking:\n  externalSubnet: 192.0.2.0/28\n", 2);
  EXPECT_EQ(c.external_subnet, "192.0.2.0/28");
  EXPECT_EQ(ClusterConfig::FromJson(c.ToJson()), c);
  // State saved before the field existed reads as the default.
  Json old = c.ToJson();
  old.erase("externalSubnet");
  EXPECT_EQ(ClusterConfig::FromJson(old).external_subnet, "203.0.113.0/24");
  ExpectInvalidContains(kHeader + "networking:\n  externalSubnet: 192.0.2.0/30\n",
                        "networking.externalSubnet", "must be a /29 or larger");
  ExpectInvalidContains(
      kHeader + "networking:\n  underlay: 172.18.0.0/24\n  externalSubnet: 172.18.0.0/16\n",
      "networking.externalSubnet", "overlaps networking.underlay");
  ExpectInvalidContains(kHeader + "networking:\n  externalSubnet: 10.244.7.0/24\n",
                        "networking.externalSubnet", "overlaps networking.podSubnet");
}

TEST(ClusterConfigTest, LoadBalancerSubnet) {
  EXPECT_EQ(Build("", 1).load_balancer_subnet, "198.51.100.0/24");
  ClusterConfig c = Build(kHeader + "networking:\n  loadBalancerSubnet: 192.0.2.64/26\n", 2);
  EXPECT_EQ(c.load_balancer_subnet, "192.0.2.64/26");
  EXPECT_EQ(ClusterConfig::FromJson(c.ToJson()), c);
  // State saved before the field existed reads as the default.
  Json old = c.ToJson();
  old.erase("loadBalancerSubnet");
  EXPECT_EQ(ClusterConfig::FromJson(old).load_balancer_subnet, "198.51.100.0/24");
  ExpectInvalidContains(kHeader + "networking:\n  loadBalancerSubnet: 198.51.100.1/24\n",
                        "networking.loadBalancerSubnet", "198.51.100.1/24");
  ExpectInvalidContains(kHeader + "networking:\n  loadBalancerSubnet: nonsense\n",
                        "networking.loadBalancerSubnet", "nonsense");
  ExpectInvalidContains(kHeader + "networking:\n  loadBalancerSubnet: 10.244.7.0/24\n",
                        "networking.loadBalancerSubnet", "overlaps networking.podSubnet");
  ExpectInvalidContains(kHeader + "networking:\n  loadBalancerSubnet: 10.96.0.0/24\n",
                        "networking.loadBalancerSubnet", "overlaps networking.serviceSubnet");
  ExpectInvalidContains(kHeader + "networking:\n  loadBalancerSubnet: 172.18.0.128/25\n",
                        "networking.loadBalancerSubnet", "overlaps networking.underlay");
  ExpectInvalidContains(kHeader + "networking:\n  loadBalancerSubnet: 203.0.113.0/25\n",
                        "networking.loadBalancerSubnet", "overlaps networking.externalSubnet");
}

ClusterConfig BuildWithHost(const std::string& text, const std::vector<TakenRange>& taken,
                            const ClusterFlags& flags = {}) {
  return BuildClusterConfig("dev", 2, text, "kin.yaml", flags, taken);
}

TEST(ClusterConfigTest, HostAccessChoosesRangesClearOfTheHostsRoutes) {
  // Nothing in the way: the defaults, on by default, saved and read back.
  ClusterConfig c = BuildWithHost("", {});
  EXPECT_TRUE(c.host_access);
  EXPECT_EQ(c.underlay, "172.18.0.0/24");
  EXPECT_EQ(c.load_balancer_subnet, "198.51.100.0/24");
  EXPECT_EQ(ClusterConfig::FromJson(c.ToJson()), c);
  // State saved before host access existed was made without it.
  Json old = c.ToJson();
  old.erase("hostAccess");
  EXPECT_FALSE(ClusterConfig::FromJson(old).host_access);

  // Another cluster and docker in the way: the next clear ranges, and the
  // nodes' IPs follow the underlay.
  std::vector<TakenRange> taken = {{"172.18.0.0/24", "cluster a's networking.underlay"},
                                   {"198.51.100.0/24", "cluster a's networking.loadBalancerSubnet"},
                                   {"172.18.1.0/25", "the host's route 172.18.1.0/25 dev docker0"},
                                   {"198.18.0.0/24", "the host's route 198.18.0.0/24 dev x"},
                                   {"0.0.0.0/0", "the host's default route"}};
  ClusterConfig d = BuildWithHost("", taken);
  EXPECT_EQ(d.underlay, "172.18.2.0/24");
  EXPECT_EQ(d.nodes[0].ip, "172.18.2.2");
  EXPECT_EQ(d.nodes[1].ip, "172.18.2.3");
  EXPECT_EQ(d.load_balancer_subnet, "198.18.1.0/24");

  // A range the file names that the host routes already: Invalid, naming both.
  try {
    BuildWithHost(kHeader + "networking: {underlay: 172.18.0.0/24}\n", taken);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(CauseFor(e, "networking.underlay"),
              "Invalid value: \"172.18.0.0/24\": overlaps cluster a's networking.underlay (host "
              "access routes it on the host: choose another range, or set "
              "networking.hostAccess: false)");
  }
  // Without host access, the defaults whatever the host routes.
  ClusterConfig off = BuildWithHost(kHeader + "networking: {hostAccess: false}\n", taken);
  EXPECT_FALSE(off.host_access);
  EXPECT_EQ(off.underlay, "172.18.0.0/24");
  ClusterFlags flags;
  flags.host_access = false;
  EXPECT_EQ(BuildWithHost("", taken, flags).underlay, "172.18.0.0/24");
  ExpectInvalidContains(kHeader + "networking: {hostAccess: maybe}\n", "networking.hostAccess",
                        "must be true or false");
  // A chosen underlay never overlaps the cluster's own ranges either.
  ClusterConfig own = BuildWithHost(kHeader + "networking: {podSubnet: 172.18.0.0/23}\n", {});
  EXPECT_EQ(own.underlay, "172.18.2.0/24");
  // Everything taken: Invalid, saying so.
  try {
    BuildWithHost("", {{"172.16.0.0/12", "the host's route 172.16.0.0/12 dev vpn0"}});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(CauseFor(e, "networking.underlay").find("every candidate range is routed"),
              std::string::npos);
  }
}

TEST(ClusterConfigTest, ClusterDns) {
  ClusterConfig d = Build("", 1);
  EXPECT_EQ(d.dns_domain, "cluster.local");
  EXPECT_EQ(d.dns_replicas, 2);
  EXPECT_TRUE(d.dns_upstreams.empty());
  EXPECT_EQ(d.DnsForwardTimeout(), std::chrono::seconds(2));
  ClusterConfig c =
      Build(kHeader +
                "dns:\n  domain: kin.test.\n  replicas: 1\n  upstreams: [203.0.113.2, "
                "192.0.2.53]\n  forwardTimeout: 500ms\n",
            2);
  EXPECT_EQ(c.dns_domain, "kin.test");
  EXPECT_EQ(c.dns_replicas, 1);
  EXPECT_EQ(c.dns_upstreams, (std::vector<std::string>{"203.0.113.2", "192.0.2.53"}));
  EXPECT_EQ(c.DnsForwardTimeout(), std::chrono::milliseconds(500));
  EXPECT_EQ(ClusterConfig::FromJson(c.ToJson()), c);
  // State saved before cluster DNS existed reads as the defaults.
  Json old = c.ToJson();
  old.erase("dns");
  EXPECT_EQ(ClusterConfig::FromJson(old).dns_domain, "cluster.local");
  EXPECT_EQ(ClusterConfig::FromJson(old).dns_replicas, 2);

  ExpectInvalid(kHeader + "dns:\n  domain: Cluster_Local\n", "dns.domain",
                "Invalid value: \"Cluster_Local\": must be a DNS domain of lower-case labels, "
                "such as cluster.local");
  ExpectInvalidContains(kHeader + "dns:\n  replicas: -1\n", "dns.replicas",
                        "must be a whole number from 0 to 10");
  ExpectInvalidContains(kHeader + "dns:\n  upstreams: [8.8.8.8, dns.example]\n", "dns.upstreams[1]",
                        "must be an IPv4 address");
  ExpectInvalidContains(kHeader + "dns:\n  upstreams: []\n", "dns.upstreams",
                        "must be a list of resolvers");
  ExpectInvalidContains(kHeader + "dns:\n  forwardTimeout: 10ms\n", "dns.forwardTimeout",
                        "must be a duration from 100ms to 60s");
  ExpectInvalidContains(kHeader + "dns:\n  port: 53\n", "dns.port", "unknown field");
}

TEST(ClusterConfigTest, AllProblemsReportedAtOnce) {
  Error e = BuildError(kHeader + R"(nodes:
- role: master
- role: worker
  foo: 1
networking:
  routing: vxlan
)");
  EXPECT_EQ(e.code(), Code::kInvalid);
  EXPECT_EQ(e.causes().size(), 3u) << e.message();
  EXPECT_EQ(CauseFor(e, "nodes[0].role"),
            "Unsupported value: \"master\": supported values: \"control-plane\", \"worker\"");
  EXPECT_EQ(CauseFor(e, "nodes[1].foo"), "unknown field \"nodes[1].foo\"");
  EXPECT_EQ(CauseFor(e, "networking.routing"),
            "Unsupported value: \"vxlan\": supported values: \"routed\", \"host-gw\"");
  EXPECT_EQ(e.details_kind(), "Cluster");
  EXPECT_EQ(e.details_name(), "dev");
  EXPECT_EQ(e.message().rfind("kin.yaml: Cluster \"dev\" is invalid: [", 0), 0u) << e.message();
}

TEST(ClusterConfigTest, NodeListProblems) {
  ExpectInvalid(kHeader + "nodes: []\n", "nodes",
                "Required value: at least one node (a control-plane)");
  ExpectInvalid(kHeader + "nodes:\n- role: worker\n", "nodes",
                "Required value: at least one node must have role \"control-plane\"");
  ExpectInvalid(kHeader + "nodes:\n- {}\n", "nodes[0].role",
                "Required value: must be \"control-plane\" or \"worker\"");
  ExpectInvalid(kHeader + "nodes: {role: worker}\n", "nodes",
                "Invalid value: {\"role\":\"worker\"}: must be a list of nodes");
  ExpectInvalid(kHeader + "nodes:\n- worker\n", "nodes[0]",
                "Invalid value: \"worker\": must be a mapping");
  std::string many = kHeader + "networking: {underlay: 172.18.0.0/16}\nnodes:\n";
  for (int i = 0; i < 101; ++i) many += "- role: control-plane\n";
  ExpectInvalid(many, "nodes", "Too many: 101: must have at most 100 items");
}

TEST(ClusterConfigTest, NodesFlag) {
  Error e = BuildError(kHeader + "nodes:\n- role: control-plane\n", 3);
  EXPECT_EQ(e.code(), Code::kInvalid);
  EXPECT_EQ(e.message(), "--nodes conflicts with nodes in kin.yaml (use one or the other)");
  // A file without nodes works with --nodes.
  EXPECT_EQ(Build(kHeader + "networking: {routing: host-gw}\n", 4).nodes.size(), 4u);
  for (int bad : {0, -1, 101}) {
    Error e2 = BuildError("", bad);
    EXPECT_EQ(CauseFor(e2, "--nodes"),
              "Invalid value: " + std::to_string(bad) + ": must be between 1 and 100");
  }
  EXPECT_EQ(Build("", 100).nodes.back().name, "kin-dev-worker99");
}

TEST(ClusterConfigTest, ClusterName) {
  ExpectInvalid(kHeader + "name: web\n", "name",
                "Invalid value: \"web\": does not match the cluster name \"dev\" given by --name "
                "(omit one, or make them equal)");
  Error e = BuildError("", std::nullopt, "Dev_1");
  EXPECT_NE(CauseFor(e, "name").find("Invalid value: \"Dev_1\": a lowercase RFC 1123 label"),
            std::string::npos);
  Error e2 = BuildError("", std::nullopt, std::string(31, 'a'));
  EXPECT_EQ(CauseFor(e2, "name"), "Invalid value: \"" + std::string(31, 'a') +
                                      "\": must be no more than 30 characters (it is part of "
                                      "namespace and interface names)");
  EXPECT_EQ(Build("", std::nullopt, std::string(30, 'a')).name, std::string(30, 'a'));
  Error e3 = BuildError("", std::nullopt, "-x");
  EXPECT_EQ(e3.code(), Code::kInvalid);
}

TEST(ClusterConfigTest, Cidrs) {
  ExpectInvalidContains(kHeader + "networking: {podSubnet: 10.244.0.0}\n", "networking.podSubnet",
                        "Invalid value: \"10.244.0.0\"");
  ExpectInvalidContains(kHeader + "networking: {serviceSubnet: 10.96.0.1/16}\n",
                        "networking.serviceSubnet", "host bits are set");
  ExpectInvalidContains(kHeader + "networking: {underlay: 300.1.1.0/24}\n", "networking.underlay",
                        "Invalid value: \"300.1.1.0/24\"");
  ExpectInvalid(
      kHeader + "networking: {serviceSubnet: 10.244.128.0/20}\n", "networking.serviceSubnet",
      "Invalid value: \"10.244.128.0/20\": overlaps networking.podSubnet (10.244.0.0/16)");
  ExpectInvalid(kHeader + "networking: {underlay: 10.244.5.0/24}\n", "networking.underlay",
                "Invalid value: \"10.244.5.0/24\": overlaps networking.podSubnet (10.244.0.0/16)");
  ExpectInvalid(kHeader + "networking: {serviceSubnet: 10.96.0.0/29}\n", "networking.serviceSubnet",
                "Invalid value: \"10.96.0.0/29\": must hold at least 16 addresses (a /28 or "
                "larger; the cluster DNS is its .10)");
  ExpectInvalid(kHeader + "networking: {podSubnet: 10.96.0.0/12}\n", "networking.serviceSubnet",
                "Invalid value: \"10.96.0.0/16\": overlaps networking.podSubnet (10.96.0.0/12)");
}

TEST(ClusterConfigTest, NodeCidrMaskSizeAndRoom) {
  ExpectInvalid(kHeader + "networking: {nodeCidrMaskSize: 15}\n", "networking.nodeCidrMaskSize",
                "Invalid value: 15: must be between the prefix length of networking.podSubnet "
                "(16) and 30");
  ExpectInvalid(kHeader + "networking: {nodeCidrMaskSize: 31}\n", "networking.nodeCidrMaskSize",
                "Invalid value: 31: must be between the prefix length of networking.podSubnet "
                "(16) and 30");
  ExpectInvalid(kHeader + "networking: {nodeCidrMaskSize: \"24\"}\n", "networking.nodeCidrMaskSize",
                "Invalid value: \"24\": must be a prefix length (an integer such as 24)");
  Error e = BuildError(kHeader + "networking: {podSubnet: 10.244.0.0/23}\n", 3);
  EXPECT_EQ(CauseFor(e, "networking.podSubnet"),
            "Invalid value: \"10.244.0.0/23\": holds 2 /24 node blocks, fewer than the 3 nodes");
  Error e2 = BuildError(kHeader + "networking: {underlay: 172.18.0.0/29, hostAccess: false}\n", 6);
  EXPECT_EQ(CauseFor(e2, "networking.underlay"),
            "Invalid value: \"172.18.0.0/29\": has room for 5 node addresses, fewer than the 6 "
            "nodes");
  // Exactly full is fine: a /29 underlay holds .2 to .6.
  ClusterConfig c = Build(kHeader + "networking: {underlay: 172.18.0.0/29, hostAccess: false}\n", 5);
  EXPECT_EQ(c.nodes.back().ip, "172.18.0.6");
  // With host access, the host's link holds .6.
  Error e3 = BuildError(kHeader + "networking: {underlay: 172.18.0.0/29}\n", 5);
  EXPECT_EQ(CauseFor(e3, "networking.underlay"),
            "Invalid value: \"172.18.0.0/29\": has room for 4 node addresses, fewer than the 5 "
            "nodes");
  // A podSubnet equal to the node block: one node.
  ClusterConfig one = Build(kHeader + "networking: {podSubnet: 10.244.0.0/24}\n");
  EXPECT_EQ(one.nodes[0].pod_cidr, "10.244.0.0/24");
}

TEST(ClusterConfigTest, Capacity) {
  const std::string nodes = "nodes:\n- role: control-plane\n  capacity: ";
  ExpectInvalid(kHeader + nodes + "{cpu: lots}\n", "nodes[0].capacity[cpu]",
                "Invalid value: \"lots\": must be a non-negative quantity (e.g. \"2\", \"500m\", "
                "\"16Gi\", \"1e3\")");
  ExpectInvalid(kHeader + nodes + "{memory: \"-1Gi\"}\n", "nodes[0].capacity[memory]",
                "Invalid value: \"-1Gi\": must be a non-negative quantity (e.g. \"2\", \"500m\", "
                "\"16Gi\", \"1e3\")");
  ExpectInvalid(kHeader + nodes + "{pods: 1.5}\n", "nodes[0].capacity[pods]",
                "Invalid value: \"1.5\": must be a whole number of pods");
  ExpectInvalidContains(kHeader + nodes + "{gpu: 1}\n", "nodes[0].capacity",
                        "Unsupported value: \"gpu\": supported values: \"cpu\", \"memory\"");
  ExpectInvalidContains(kHeader + nodes + "{kubernetes.io/foo: 1}\n", "nodes[0].capacity",
                        "Unsupported value: \"kubernetes.io/foo\"");
  ExpectInvalid(kHeader + nodes + "{cpu: [1]}\n", "nodes[0].capacity[cpu]",
                "Invalid value: [1]: must be a quantity such as \"4\" or \"16Gi\"");
  ClusterConfig c = Build(kHeader + nodes + "{cpu: 500m, memory: 1.5Gi, hugepages-1Gi: 2Gi}\n");
  EXPECT_EQ(c.nodes[0].capacity["cpu"], "500m");
  EXPECT_EQ(c.nodes[0].capacity["memory"], "1.5Gi");
  EXPECT_EQ(c.nodes[0].capacity["hugepages-1Gi"], "2Gi");
  EXPECT_EQ(c.nodes[0].capacity["pods"], "110");
}

TEST(ClusterConfigTest, Labels) {
  const std::string nodes = "nodes:\n- role: control-plane\n  labels: ";
  ExpectInvalidContains(kHeader + nodes + "{\"bad key!\": x}\n", "nodes[0].labels",
                        "Invalid value: \"bad key!\": name part must consist of");
  ExpectInvalidContains(kHeader + nodes + "{\"Example.COM/x\": x}\n", "nodes[0].labels",
                        "prefix part a lowercase RFC 1123 subdomain");
  ExpectInvalidContains(kHeader + nodes + "{tier: \"front end\"}\n", "nodes[0].labels[tier]",
                        "Invalid value: \"front end\": a valid label must be an empty string");
  ExpectInvalid(
      kHeader + nodes + "{tier: " + std::string(64, 'a') + "}\n", "nodes[0].labels[tier]",
      "Invalid value: \"" + std::string(64, 'a') + "\": must be no more than 63 characters");
  ExpectInvalid(kHeader + nodes + "{version: 1}\n", "nodes[0].labels[version]",
                "Invalid value: 1: must be a string (quote it: \"1\")");
  ExpectInvalid(kHeader + nodes + "[a]\n", "nodes[0].labels",
                "Invalid value: [\"a\"]: must be a mapping");
  ClusterConfig c = Build(kHeader + nodes + "{empty: \"\", a.b/c_d: X.y-z}\n");
  EXPECT_EQ(c.nodes[0].labels.at("empty"), "");
  EXPECT_EQ(c.nodes[0].labels.at("a.b/c_d"), "X.y-z");
}

TEST(ClusterConfigTest, ImageHostMappings) {
  ExpectInvalid(kHeader + "images:\n  hostMappings:\n    busybox: relative/dir\n",
                "images.hostMappings[busybox]",
                "Invalid value: \"relative/dir\": must be an absolute path of a host directory "
                "without \"..\"");
  ExpectInvalid(kHeader + "images:\n  hostMappings:\n    busybox: /opt/../etc\n",
                "images.hostMappings[busybox]",
                "Invalid value: \"/opt/../etc\": must be an absolute path of a host directory "
                "without \"..\"");
  ExpectInvalid(kHeader + "images:\n  hostMappings:\n    busybox: 3\n",
                "images.hostMappings[busybox]",
                "Invalid value: 3: must be a host directory (an absolute path)");
  ExpectInvalid(kHeader + "images:\n  hostMappings:\n    \"my image\": /\n", "images.hostMappings",
                "Invalid value: \"my image\": an image name must be non-empty and contain no "
                "whitespace");
  EXPECT_EQ(
      Build(kHeader + "images:\n  hostMappings:\n    x: /a/..b\n").image_host_mappings.at("x"),
      "/a/..b");
}

TEST(ClusterConfigTest, JsonRoundTrip) {
  ClusterConfig c = Build(kHeader + R"(nodes:
- role: control-plane
- role: worker
  labels: {tier: frontend}
  capacity: {cpu: "4"}
networking: {routing: host-gw, nodeCidrMaskSize: 25}
images:
  hostMappings: {"myorg/tools:dev": /}
)");
  Json j = c.ToJson();
  EXPECT_EQ(j["nodes"][1]["podCIDR"], "10.244.0.128/25");
  EXPECT_EQ(j["dnsIP"], "10.96.0.10");
  EXPECT_EQ(ClusterConfig::FromJson(j), c);
  EXPECT_EQ(ClusterConfig::FromJson(Json::parse(j.dump())), c);
  EXPECT_EQ(ClusterConfig::FromJson(Build("", 10).ToJson()), Build("", 10));

  Json broken = j;
  broken["nodes"][0].erase("ip");
  try {
    ClusterConfig::FromJson(broken);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalid);
    EXPECT_NE(e.message().find("ip"), std::string::npos) << e.message();
  }
}

TEST(ClusterConfigTest, RegistriesMirrorsAndInsecureHosts) {
  ClusterConfig c = Build(kHeader + R"(registries:
  mirrors:
    docker.io: ["http://127.0.0.1:5000", "mirror.example:443"]
  insecure: ["127.0.0.1:5000"]
)");
  EXPECT_EQ(c.registry_mirrors.at("docker.io"),
            (std::vector<std::string>{"http://127.0.0.1:5000", "mirror.example:443"}));
  EXPECT_EQ(c.registry_insecure, std::vector<std::string>{"127.0.0.1:5000"});
  EXPECT_EQ(ClusterConfig::FromJson(c.ToJson()), c);
  // State written before registries existed: none.
  Json old = c.ToJson();
  old.erase("registries");
  EXPECT_TRUE(ClusterConfig::FromJson(old).registry_mirrors.empty());

  ExpectInvalidContains(kHeader + "registries:\n  mirrors:\n    docker.io: [\"ftp://x\"]\n",
                        "registries.mirrors[docker.io][0]", "must be an endpoint URL");
  ExpectInvalidContains(kHeader + "registries:\n  mirrors:\n    docker.io: http://x\n",
                        "registries.mirrors[docker.io]", "must be a list");
  ExpectInvalidContains(kHeader + "registries:\n  insecure: [\"http://h:1\"]\n",
                        "registries.insecure[0]", "no scheme");
  ExpectInvalidContains(kHeader + "registries:\n  insecure: h\n", "registries.insecure",
                        "must be a list");
  ExpectInvalidContains(kHeader + "registries:\n  mirror: {}\n", "registries.mirror",
                        "unknown field");
}

TEST(ClusterConfigTest, KubeletSettingsFromFileAndFlags) {
  ClusterConfig d = Build("");
  EXPECT_EQ(d.crash_backoff, "10s");
  EXPECT_EQ(d.CrashBackoff(), std::chrono::seconds(10));
  EXPECT_EQ(d.ContainerLogMaxBytes(), 10 << 20);
  EXPECT_EQ(d.container_log_max_files, 5);
  EXPECT_EQ(d.SyncFrequency(), std::chrono::minutes(1));
  EXPECT_EQ(d.TokenMaxAge(), std::chrono::hours(24));

  ClusterConfig f = Build(kHeader +
                          "kubelet: {crashBackoff: 1m30s, containerLogMaxSize: 5Mi, "
                          "containerLogMaxFiles: 3, syncFrequency: 1s, tokenMaxAge: 3s}\n");
  EXPECT_EQ(f.SyncFrequency(), std::chrono::seconds(1));
  EXPECT_EQ(f.TokenMaxAge(), std::chrono::seconds(3));
  EXPECT_EQ(f.CrashBackoff(), std::chrono::seconds(90));
  EXPECT_EQ(f.ContainerLogMaxBytes(), 5 << 20);
  EXPECT_EQ(f.container_log_max_files, 3);
  // The JSON state keeps them; state without them (an older kin's) has the defaults.
  EXPECT_EQ(ClusterConfig::FromJson(f.ToJson()), f);
  Json old = f.ToJson();
  old.erase("kubelet");
  EXPECT_EQ(ClusterConfig::FromJson(old).container_log_max_size, "10Mi");

  // A flag wins over the file.
  ClusterFlags flags;
  flags.crash_backoff = "2s";
  flags.container_log_max_files = 7;
  ClusterConfig both = BuildClusterConfig(
      "dev", std::nullopt, kHeader + "kubelet: {containerLogMaxFiles: 3}\n", "kin.yaml", flags);
  EXPECT_EQ(both.crash_backoff, "2s");
  EXPECT_EQ(both.container_log_max_files, 7);
  EXPECT_EQ(both.container_log_max_size, "10Mi");
}

TEST(ClusterConfigTest, BadKubeletSettingsNameTheFieldOrFlag) {
  ExpectInvalid(kHeader + "kubelet: {containerLogMaxSize: 1Ki}\n", "kubelet.containerLogMaxSize",
                "Invalid value: \"1Ki\": must be a size of at least 4Ki, such as 10Mi");
  ExpectInvalid(kHeader + "kubelet: {containerLogMaxFiles: 1}\n", "kubelet.containerLogMaxFiles",
                "Invalid value: 1: must be at least 2 (the current log and one rotated file)");
  ExpectInvalid(kHeader + "kubelet: {containerLogMaxFiles: many}\n", "kubelet.containerLogMaxFiles",
                "Invalid value: \"many\": must be an integer");
  ExpectInvalid(kHeader + "kubelet: {crashBackoff: soon}\n", "kubelet.crashBackoff",
                "Invalid value: \"soon\": must be a positive duration such as 10s, 2m or 1m30s");
  ExpectInvalid(kHeader + "kubelet: {crashBackoff: 0s}\n", "kubelet.crashBackoff",
                "Invalid value: \"0s\": must be a positive duration such as 10s, 2m or 1m30s");
  ExpectInvalid(kHeader + "kubelet: {syncFrequency: 0s}\n", "kubelet.syncFrequency",
                "Invalid value: \"0s\": must be a positive duration such as 10s, 2m or 1m30s");
  ExpectInvalid(kHeader + "kubelet: {tokenMaxAge: never}\n", "kubelet.tokenMaxAge",
                "Invalid value: \"never\": must be a positive duration such as 10s, 2m or 1m30s");
  ExpectInvalid(kHeader + "kubelet: {imageGCHighThresholdPercent: 80}\n",
                "kubelet.imageGCHighThresholdPercent",
                "unknown field \"kubelet.imageGCHighThresholdPercent\"");

  ClusterFlags flags;
  flags.container_log_max_size = "lots";
  flags.container_log_max_files = 0;
  try {
    BuildClusterConfig("dev", std::nullopt, "", "", flags);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalid);
    EXPECT_EQ(CauseFor(e, "--container-log-max-size"),
              "Invalid value: \"lots\": must be a size of at least 4Ki, such as 10Mi");
    EXPECT_EQ(CauseFor(e, "--container-log-max-files"),
              "Invalid value: 0: must be at least 2 (the current log and one rotated file)");
  }
}

TEST(ParseDurationTest, GoDurationsAndErrorsNamingTheFlag) {
  EXPECT_EQ(ParseDurationMs("1m30s", "--x"), std::chrono::seconds(90));
  EXPECT_EQ(ParseDurationMs("500ms", "--x"), std::chrono::milliseconds(500));
  EXPECT_EQ(ParseDurationMs("1.5h", "--x"), std::chrono::minutes(90));
  EXPECT_EQ(ParseDuration("1ms", "--x"), std::chrono::seconds(1));
  for (const char* bad : {"", "s", "10", "10d", "1e400s", ".s", "99999999999999999h"}) {
    try {
      ParseDurationMs(bad, "--wait");
      ADD_FAILURE() << "no error for \"" << bad << "\"";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), Code::kBadRequest);
      EXPECT_NE(e.message().find("for --wait"), std::string::npos) << e.message();
    }
  }
}

TEST(ClusterConfigTest, NodeConfigRoundTrip) {
  ClusterConfig c = Build("", 2);
  for (const NodeConfig& n : c.nodes) {
    EXPECT_EQ(NodeConfig::FromJson(Json::parse(n.ToJson().dump())), n);
  }
}

}  // namespace
}  // namespace kin::cmd
