// e2e: cluster DNS, the seed's 5.5: a real cluster, real kubectl 1.33, and
// questions asked from inside pods: with the pods' own tools (getent
// through the pod's resolv.conf search path, busybox nslookup, agnhost's
// dns-suffix and dns-server-list) and, for exact records, with queries sent
// from the pod's network namespace to the kube-dns Service IP over UDP and
// TCP (answers read with libldns, testing/dns_probe.h). The kube-dns pods
// are system pods as on kind; names outside the cluster are forwarded to
// the resolver in the internet namespace; with no upstream answering, the
// answer is SERVFAIL within the forward timeout.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <sstream>
#include <string>

#include "base/process.h"
#include "testing/dns_probe.h"
#include "testing/e2e_cluster.h"
#include "testing/e2e_manifests.h"
#include "testing/kernel_fixture.h"
#include "testing/net_probe.h"

namespace kin {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using ::testing::Contains;
using testing::DnsReply;
using testing::E2eCluster;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAreArray;

constexpr char kDnsIp[] = "10.96.0.10";

const std::string kApps = testing::NetexecDeployment("web", {.replicas = 2}) + R"(---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
---
apiVersion: v1
kind: Service
metadata: {name: web-hs}
spec:
  clusterIP: None
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080, protocol: TCP}
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec:
  type: ExternalName
  externalName: www.example.com
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.52, args: [pause]}
---
apiVersion: v1
kind: Pod
metadata: {name: bb}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: busybox, command: [sleep, '3600']}
)";

const char kStatefulSet[] = R"(apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports:
  - {name: http, port: 8080, protocol: TCP}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: db
        image: registry.k8s.io/e2e-test-images/agnhost:2.52
        args: [netexec, --http-port=8080]
        readinessProbe:
          httpGet: {path: /, port: 8080}
          periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.52, args: [pause]}
)";

class DnsE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::RequireRoot()) GTEST_SKIP() << "needs root";
  }
  void TearDown() override {
    if (!testing::RequireRoot() || !created_) return;
    EXPECT_TRUE(c_.Delete()) << c_.last_output();
    EXPECT_EQ(c_.Leftovers(), std::vector<std::string>{});
  }
  // A cluster of `nodes` nodes with the given `dns:` settings.
  void Create(int nodes, const std::string& dns) {
    std::string node_list = "[{role: control-plane}";
    for (int i = 1; i < nodes; ++i) node_list += ", {role: worker}";
    testing::WriteFile(c_.File("c.yaml"), "apiVersion: kin.dev/v1alpha1\nkind: Cluster\nnodes: " +
                                              node_list + "]\ndns: " + dns + "\n");
    ASSERT_TRUE(c_.Create({"--config", c_.File("c.yaml")})) << c_.last_output();
    created_ = true;
  }
  // Asks the cluster DNS from inside `netns`, over UDP (or TCP).
  DnsReply Ask(const std::string& netns, const std::string& name, const std::string& type,
               bool tcp = false) {
    std::string q = testing::DnsQueryWire(name, type);
    testing::ProbeResult r =
        tcp ? testing::DnsTcpAskIn(netns, kDnsIp, 53, q) : testing::UdpAskIn(netns, kDnsIp, 53, q);
    EXPECT_TRUE(r.ok()) << name << " " << type << (tcp ? " tcp" : " udp") << ": errno " << r.error;
    auto reply = testing::ParseDnsReply(r.body);
    EXPECT_TRUE(reply.has_value()) << name;
    return reply.value_or(DnsReply{});
  }
  // The rcode of an answer over UDP, "" when none came (no assertion: for
  // polling while the server comes up).
  std::string Rcode(const std::string& netns, const std::string& name) {
    testing::ProbeResult r =
        testing::UdpAskIn(netns, kDnsIp, 53, testing::DnsQueryWire(name, "A"), milliseconds(500));
    auto reply = r.ok() ? testing::ParseDnsReply(r.body) : std::nullopt;
    return reply ? reply->rcode : "";
  }
  // Polls until the cluster DNS answers from `netns` (its pods Ready behind
  // the Service: a fresh cluster takes a moment, longer on a busy machine).
  bool WaitDns(const std::string& netns) {
    return E2eCluster::WaitFor(
        [&] { return Rcode(netns, "kubernetes.default.svc.cluster.local") == "NOERROR"; });
  }
  std::vector<std::string> PodIps(const std::string& selector) {
    std::vector<std::string> out;
    const Json pods = c_.GetJson({"pods", "-l", selector});
    for (const auto& p : pods["items"]) out.push_back(p["status"].value("podIP", ""));
    return out;
  }
  // Polls until the Service's EndpointSlices hold `n` ready addresses.
  bool WaitReadyEndpoints(const std::string& svc, size_t n) {
    return E2eCluster::WaitFor([&] {
      const Json slices = c_.GetJson({"endpointslices", "-l", "kubernetes.io/service-name=" + svc});
      size_t ready = 0;
      for (const auto& s : slices["items"]) {
        for (const auto& e : s.value("endpoints", Json::array())) {
          if (e.value("conditions", Json::object()).value("ready", true)) ++ready;
        }
      }
      return ready == n;
    });
  }

  E2eCluster c_{'q'};
  bool created_ = false;
};

TEST_F(DnsE2E, SystemPodsAndEveryRecordKindOverUdpAndTcp) {
  ASSERT_NO_FATAL_FAILURE(Create(2, "{upstreams: [203.0.113.2]}"));

  // Two kube-dns pods, Ready, behind the kube-dns Service at .10, as on kind.
  ASSERT_TRUE(E2eCluster::WaitFor([&] {
    const Json pods = c_.GetJson({"pods", "-n", "kube-system", "-l", "k8s-app=kube-dns"});
    int ready = 0;
    for (const auto& p : pods["items"]) {
      for (const auto& cond : p["status"].value("conditions", Json::array())) {
        if (cond.value("type", "") == "Ready" && cond.value("status", "") == "True") ++ready;
      }
    }
    return ready == 2;
  })) << c_.Ok({"get", "pods", "-n", "kube-system", "-o", "wide"});
  Json svc = c_.GetJson({"service", "kube-dns", "-n", "kube-system"});
  EXPECT_EQ(svc["spec"].value("clusterIP", ""), kDnsIp);
  EXPECT_EQ(svc["spec"]["ports"].size(), 3u);
  EXPECT_THAT(c_.Ok({"get", "deployment", "coredns", "-n", "kube-system"}), HasSubstr("2/2"));

  c_.Apply(kApps);
  Json client = c_.WaitPodReady("client");
  ASSERT_FALSE(client.is_null());
  ASSERT_FALSE(c_.WaitPodReady("bb").is_null());
  ASSERT_TRUE(WaitReadyEndpoints("web", 2)) << c_.Ok({"get", "pods", "-o", "wide"});
  const std::string ns = c_.PodNetns(client);
  ASSERT_TRUE(WaitDns(ns));
  const std::string vip = c_.GetJson({"service", "web"})["spec"].value("clusterIP", "");
  const std::vector<std::string> web_ips = PodIps("app=web");

  for (bool tcp : {false, true}) {
    SCOPED_TRACE(tcp ? "tcp" : "udp");
    DnsReply a = Ask(ns, "web.default.svc.cluster.local", "A", tcp);
    EXPECT_EQ(a.rcode, "NOERROR");
    EXPECT_TRUE(a.aa);
    EXPECT_EQ(a.answer,
              std::vector<std::string>{"web.default.svc.cluster.local.\t30\tIN\tA\t" + vip});

    EXPECT_THAT(Ask(ns, "web-hs.default.svc.cluster.local", "A", tcp).Data("A"),
                UnorderedElementsAreArray(web_ips));

    EXPECT_EQ(Ask(ns, "_http._tcp.web.default.svc.cluster.local", "SRV", tcp).Data("SRV"),
              std::vector<std::string>{"0 100 80 web.default.svc.cluster.local."});

    std::string rev;  // 10.96.x.y -> y.x.96.10.in-addr.arpa
    {
      std::vector<std::string> octets;
      std::stringstream in(vip);
      for (std::string o; std::getline(in, o, '.');) octets.insert(octets.begin(), o);
      for (const auto& o : octets) rev += o + ".";
    }
    EXPECT_EQ(Ask(ns, rev + "in-addr.arpa", "PTR", tcp).Data("PTR"),
              std::vector<std::string>{"web.default.svc.cluster.local."});

    std::string dashed = web_ips[0];
    std::replace(dashed.begin(), dashed.end(), '.', '-');
    EXPECT_EQ(Ask(ns, dashed + ".default.pod.cluster.local", "A", tcp).Data("A"),
              std::vector<std::string>{web_ips[0]});

    EXPECT_EQ(Ask(ns, "kubernetes.default.svc.cluster.local", "A", tcp).Data("A"),
              std::vector<std::string>{"10.96.0.1"});

    // ExternalName: the CNAME, and its target resolved upstream.
    DnsReply ext = Ask(ns, "ext.default.svc.cluster.local", "A", tcp);
    EXPECT_EQ(ext.Data("CNAME"), std::vector<std::string>{"www.example.com."});
    EXPECT_EQ(ext.Data("A"), std::vector<std::string>{"203.0.113.2"});

    // No AAAA in this IPv4 cluster: NODATA, not NXDOMAIN, with the SOA.
    DnsReply aaaa = Ask(ns, "web.default.svc.cluster.local", "AAAA", tcp);
    EXPECT_EQ(aaaa.rcode, "NOERROR");
    EXPECT_TRUE(aaaa.answer.empty());
    ASSERT_EQ(aaaa.authority.size(), 1u);
    EXPECT_THAT(aaaa.authority[0],
                HasSubstr("SOA\tns.dns.cluster.local. hostmaster.cluster.local."));

    DnsReply nx = Ask(ns, "nope.default.svc.cluster.local", "A", tcp);
    EXPECT_EQ(nx.rcode, "NXDOMAIN");
    ASSERT_EQ(nx.authority.size(), 1u);
    EXPECT_THAT(nx.authority[0], HasSubstr("SOA"));

    // Outside the cluster domain: forwarded to the internet's resolver.
    DnsReply fwd = Ask(ns, "www.example.com", "A", tcp);
    EXPECT_EQ(fwd.rcode, "NOERROR");
    EXPECT_EQ(fwd.Data("A"), std::vector<std::string>{"203.0.113.2"});
  }

  // The pods' own tools, through their resolv.conf (search path, ndots 5).
  for (const std::string name : {"web", "web.default", "web.default.svc"}) {
    EXPECT_THAT(c_.Ok({"exec", "client", "--", "getent", "hosts", name}), HasSubstr(vip)) << name;
  }
  EXPECT_THAT(c_.Ok({"exec", "client", "--", "getent", "hosts", "kubernetes.default"}),
              HasSubstr("10.96.0.1"));
  EXPECT_THAT(c_.Ok({"exec", "bb", "--", "nslookup", "web.default.svc.cluster.local"}),
              HasSubstr(vip));
  // agnhost's resolver helpers, run as containers the way upstream's e2e runs them.
  c_.Apply(R"(apiVersion: v1
kind: Pod
metadata: {name: dnsinfo}
spec:
  restartPolicy: Never
  containers:
  - {name: suffix, image: registry.k8s.io/e2e-test-images/agnhost:2.52, args: [dns-suffix]}
  - {name: servers, image: registry.k8s.io/e2e-test-images/agnhost:2.52, args: [dns-server-list]}
)");
  ASSERT_TRUE(E2eCluster::WaitFor([&] {
    return c_.GetJson({"pod", "dnsinfo"})["status"].value("phase", "") == "Succeeded";
  })) << c_.Ok({"describe", "pod", "dnsinfo"});
  EXPECT_EQ(c_.Ok({"logs", "dnsinfo", "-c", "suffix"}),
            "default.svc.cluster.local,svc.cluster.local,cluster.local\n");
  EXPECT_EQ(c_.Ok({"logs", "dnsinfo", "-c", "servers"}), "10.96.0.10\n");

  // Metrics through the Service's metrics port.
  testing::ProbeResult m = testing::HttpGetIn(ns, kDnsIp, 9153, "/metrics");
  ASSERT_TRUE(m.ok()) << m.error;
  EXPECT_THAT(m.body, HasSubstr("coredns_dns_requests_total{"));
  EXPECT_THAT(m.body, HasSubstr("rcode=\"NXDOMAIN\""));
}

TEST_F(DnsE2E, HeadlessAnswersFollowScalingAndStatefulSetNamesTheirPod) {
  ASSERT_NO_FATAL_FAILURE(Create(2, "{upstreams: [203.0.113.2]}"));
  c_.Apply(kStatefulSet);
  Json client = c_.WaitPodReady("client");
  ASSERT_FALSE(client.is_null());
  const std::string ns = c_.PodNetns(client);
  ASSERT_TRUE(WaitDns(ns)) << c_.Ok({"get", "pods", "-A", "-o", "wide"});
  ASSERT_TRUE(WaitReadyEndpoints("db", 2)) << c_.Ok({"get", "pods", "-o", "wide"});

  auto pod_ip = [&](const std::string& pod) {
    return c_.GetJson({"pod", pod})["status"].value("podIP", "");
  };
  // The stable name of a StatefulSet pod: <hostname>.<subdomain>.<ns>.svc.
  EXPECT_EQ(Ask(ns, "db-0.db.default.svc.cluster.local", "A").Data("A"),
            std::vector<std::string>{pod_ip("db-0")});
  EXPECT_EQ(Ask(ns, "_http._tcp.db.default.svc.cluster.local", "SRV").Data("SRV").size(), 2u);

  // Recreated, it is found at its current IP.
  const std::string old_uid = c_.GetJson({"pod", "db-0"})["metadata"].value("uid", "");
  c_.Ok({"delete", "pod", "db-0", "--wait=false"});
  ASSERT_TRUE(E2eCluster::WaitFor([&] {
    Json p = c_.GetJson({"pod", "db-0"});
    return p.is_object() && p["metadata"].value("uid", "") != old_uid &&
           !p["status"].value("podIP", "").empty();
  }));
  ASSERT_TRUE(WaitReadyEndpoints("db", 2));
  EXPECT_TRUE(E2eCluster::WaitFor(
      [&] {
        return Ask(ns, "db-0.db.default.svc.cluster.local", "A").Data("A") ==
               std::vector<std::string>{pod_ip("db-0")};
      },
      seconds(1)));

  // The headless answer follows scaling, within a second of the endpoints.
  for (int replicas : {3, 1}) {
    c_.Ok({"scale", "statefulset", "db", "--replicas=" + std::to_string(replicas)});
    ASSERT_TRUE(WaitReadyEndpoints("db", static_cast<size_t>(replicas)))
        << c_.Ok({"get", "pods", "-o", "wide"});
    EXPECT_TRUE(E2eCluster::WaitFor(
        [&] {
          return Ask(ns, "db.default.svc.cluster.local", "A").Data("A").size() ==
                 static_cast<size_t>(replicas);
        },
        seconds(1)))
        << replicas;
  }
}

const char kManyAndUnready[] = R"(apiVersion: apps/v1
kind: Deployment
metadata: {name: many}
spec:
  replicas: 100
  selector: {matchLabels: {app: many}}
  template:
    metadata: {labels: {app: many}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - {name: c, image: registry.k8s.io/pause:3.9}
---
apiVersion: v1
kind: Service
metadata: {name: many}
spec:
  clusterIP: None
  selector: {app: many}
  ports:
  - {name: http, port: 80}
---
apiVersion: v1
kind: Pod
metadata: {name: unready, labels: {app: unready}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: c
    image: registry.k8s.io/e2e-test-images/agnhost:2.52
    args: [netexec, --http-port=8080]
    readinessProbe:
      httpGet: {path: /, port: 9999}
      periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: published}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {app: unready}
  ports:
  - {name: http, port: 8080}
---
apiVersion: v1
kind: Service
metadata: {name: unpublished}
spec:
  clusterIP: None
  selector: {app: unready}
  ports:
  - {name: http, port: 8080}
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - {name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.52, args: [pause]}
)";

TEST_F(DnsE2E, ALargeAnswerFallsBackToTcpAndNotReadyPodsArePublishedOnRequest) {
  ASSERT_NO_FATAL_FAILURE(Create(3, "{upstreams: [203.0.113.2]}"));
  c_.Apply(kManyAndUnready);
  Json client = c_.WaitPodReady("client");
  ASSERT_FALSE(client.is_null());
  const std::string ns = c_.PodNetns(client);
  ASSERT_TRUE(WaitDns(ns)) << c_.Ok({"get", "pods", "-A", "-o", "wide"});
  ASSERT_TRUE(WaitReadyEndpoints("many", 100)) << c_.Ok({"get", "deployment", "many"});

  // 100 A records do not fit 512 bytes: truncated over UDP, whole over TCP.
  DnsReply udp = Ask(ns, "many.default.svc.cluster.local", "A");
  EXPECT_TRUE(udp.tc);
  EXPECT_LT(udp.Data("A").size(), 100u);
  DnsReply tcp = Ask(ns, "many.default.svc.cluster.local", "A", true);
  EXPECT_FALSE(tcp.tc);
  EXPECT_THAT(tcp.Data("A"), UnorderedElementsAreArray(PodIps("app=many")));
  // The pod's own resolver (glibc) retries over TCP and gets all 100.
  EXPECT_EQ(c_.Ok({"exec", "client", "--", "sh", "-c",
                   "getent ahostsv4 many.default.svc.cluster.local | cut -d' ' -f1 | sort -u | "
                   "wc -l"}),
            "100\n");

  // A pod that never turns ready: published only where the Service asks.
  Json unready = c_.GetJson({"pod", "unready"});
  ASSERT_TRUE(E2eCluster::WaitFor([&] {
    unready = c_.GetJson({"pod", "unready"});
    return !unready["status"].value("podIP", "").empty();
  }));
  const std::string ip = unready["status"].value("podIP", "");
  EXPECT_TRUE(E2eCluster::WaitFor([&] {
    return Ask(ns, "published.default.svc.cluster.local", "A").Data("A") ==
           std::vector<std::string>{ip};
  })) << c_.Ok({"get", "endpointslices", "-o", "yaml"});
  EXPECT_EQ(Ask(ns, "unpublished.default.svc.cluster.local", "A").rcode, "NXDOMAIN");
}

TEST_F(DnsE2E, AfterAKilledServeTheSameDnsPodsAnswerAgain) {
  ASSERT_NO_FATAL_FAILURE(Create(2, "{upstreams: [203.0.113.2]}"));
  c_.Apply(kApps);
  Json client = c_.WaitPodReady("client");
  ASSERT_FALSE(client.is_null());
  const std::string ns = c_.PodNetns(client);
  ASSERT_TRUE(WaitDns(ns));
  auto dns_pods = [&] {
    std::set<std::string> uids;
    const Json pods = c_.GetJson({"pods", "-n", "kube-system", "-l", "k8s-app=kube-dns"});
    for (const auto& p : pods["items"]) uids.insert(p["metadata"].value("uid", ""));
    return uids;
  };
  const std::set<std::string> before = dns_pods();
  EXPECT_EQ(before.size(), 2u);

  c_.KillServe();
  CommandResult r = c_.Kin({"cluster", "start", "--name", c_.name()});
  ASSERT_TRUE(r.status.success()) << r.out << r.err << c_.Log();
  // The pods kept running; the restarted kin serve answers in them again,
  // with a zone made afresh from the API.
  EXPECT_TRUE(
      E2eCluster::WaitFor([&] { return Rcode(ns, "web.default.svc.cluster.local") == "NOERROR"; }));
  EXPECT_EQ(dns_pods(), before);
  // Through the pod's own resolver too (polled: under load, a first query
  // to the restarted server may time out, which getent reports as not found).
  const std::string vip = c_.GetJson({"service", "web"})["spec"].value("clusterIP", "-");
  std::string got;
  EXPECT_TRUE(E2eCluster::WaitFor([&] {
    got = c_.Kubectl({"exec", "client", "--", "getent", "hosts", "web"}).out;
    return got.find(vip) != std::string::npos;
  })) << got;
  // The kube-dns Service is there with its fixed clusterIP: making it again
  // fails ("already allocated"), which is no error to report.
  EXPECT_THAT(c_.Log(), ::testing::Not(HasSubstr("cannot create")));
}

TEST_F(DnsE2E, WithNoUpstreamAnsweringTheAnswerIsServfailWithinTheTimeout) {
  // 203.0.113.99 is in the internet namespace's range, and nothing holds it.
  ASSERT_NO_FATAL_FAILURE(
      Create(1, "{upstreams: [203.0.113.99], forwardTimeout: 1s, replicas: 1}"));
  c_.Apply(
      "apiVersion: v1\nkind: Pod\nmetadata: {name: client}\nspec:\n  containers:\n"
      "  - {name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.52, args: [pause]}\n");
  Json client = c_.WaitPodReady("client");
  ASSERT_FALSE(client.is_null());
  const std::string ns = c_.PodNetns(client);
  ASSERT_TRUE(WaitDns(ns)) << c_.Ok({"get", "pods", "-A", "-o", "wide"});
  auto r =
      testing::UdpAskIn(ns, kDnsIp, 53, testing::DnsQueryWire("www.example.com", "A"), seconds(5));
  ASSERT_TRUE(r.ok()) << r.error;
  auto reply = testing::ParseDnsReply(r.body);
  ASSERT_TRUE(reply);
  EXPECT_EQ(reply->rcode, "SERVFAIL");
  EXPECT_GE(r.took, milliseconds(900));
  EXPECT_LT(r.took, milliseconds(2500));
  // Names of the cluster still answer at once.
  EXPECT_EQ(Ask(ns, "kubernetes.default.svc.cluster.local", "A").Data("A"),
            std::vector<std::string>{"10.96.0.1"});
}

}  // namespace
}  // namespace kin
