// e2e: the built-in Ingress controller, the seed's 6.2.4: a real cluster of
// two nodes, real kubectl 1.33. The controller is there from the start as
// on a kind cluster with ingress-nginx deployed (namespace ingress-nginx,
// IngressClass `kin` marked default, a LoadBalancer Service); an Ingress
// with two hosts and several paths sends each request to the right Service
// (requests sent from a pod's network namespace to the ingress Service's
// ClusterIP with a Host header), the backend sees X-Forwarded-For with the
// client pod's address, TLS terminates with a Secret's certificate (made
// with openssl here) that verifies for its host, an Upgrade goes through
// as raw bytes both ways, a backend scaled to zero gives 503 and recovers
// at one, and `kubectl get ingress` shows the class and the address of the
// controller's LoadBalancer Service, which answers from the cluster's
// internet namespace on 80 and 443.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "base/process.h"
#include "testing/e2e_cluster.h"
#include "testing/kernel_fixture.h"
#include "testing/net_probe.h"

namespace kin {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::E2eCluster;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// A backend that answers upgrades: busybox nc runs a shell per connection
// that reads the request head, answers 101 and echoes what follows.
const char kWsScript[] =
    R"(          while read -r l; do l=$(printf '%s' "$l" | tr -d '\r'); [ -z "$l" ] && break; done
          printf 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n'
          exec cat
)";

std::string Apps() {
  auto hostname_app = [](const std::string& name) {
    return "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: " + name +
           "}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: " + name +
           "}}\n  template:\n    metadata: {labels: {app: " + name +
           "}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n"
           "      - name: c\n        image: registry.k8s.io/e2e-test-images/agnhost:2.52\n"
           "        args: [serve-hostname, --http, --port, '9376']\n"
           "        readinessProbe: {tcpSocket: {port: 9376}, periodSeconds: 1}\n---\n";
  };
  return hostname_app("alpha") + hostname_app("beta") + R"(apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  replicas: 1
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: registry.k8s.io/e2e-test-images/agnhost:2.52
        args: [netexec, --http-port=8080]
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ws}
spec:
  replicas: 1
  selector: {matchLabels: {app: ws}}
  template:
    metadata: {labels: {app: ws}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox
        command:
        - nc
        - -ll
        - -p
        - '8080'
        - -e
        - sh
        - -c
        - |
)" + std::string(kWsScript) +
         R"(
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: alpha}
spec:
  selector: {app: alpha}
  ports: [{name: http, port: 80, targetPort: 9376}]
---
apiVersion: v1
kind: Service
metadata: {name: beta}
spec:
  selector: {app: beta}
  ports: [{name: web, port: 8081, targetPort: 9376}]
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: ws}
spec:
  selector: {app: ws}
  ports: [{name: ws, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: registry.k8s.io/e2e-test-images/agnhost:2.52, args: [pause]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: demo}
spec:
  ingressClassName: kin
  tls:
  - {hosts: [secure.example], secretName: secure-tls}
  rules:
  - host: secure.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: alpha, port: {number: 80}}}}
  - host: alpha.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: alpha, port: {number: 80}}}}
      - {path: /api, pathType: Prefix, backend: {service: {name: beta, port: {name: web}}}}
      - {path: /ws, pathType: Exact, backend: {service: {name: ws, port: {number: 80}}}}
  - host: beta.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: beta, port: {name: web}}}}
      - {path: /header, pathType: Exact, backend: {service: {name: echo, port: {number: 80}}}}
---
# No class: served all the same, kin being the default class.
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: classless}
spec:
  rules:
  - host: gamma.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: alpha, port: {number: 80}}}}
)";
}

class IngressE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!testing::RequireRoot()) GTEST_SKIP() << "needs root";
    testing::WriteFile(c_.File("c.yaml"),
                       "apiVersion: kin.dev/v1alpha1\nkind: Cluster\n"
                       "nodes: [{role: control-plane}, {role: worker}]\n");
    ASSERT_TRUE(c_.Create({"--config", c_.File("c.yaml")})) << c_.last_output();
    created_ = true;
  }
  void TearDown() override {
    if (!created_) return;
    EXPECT_TRUE(c_.Delete()) << c_.last_output();
    EXPECT_EQ(c_.Leftovers(), std::vector<std::string>{});
  }
  // One request with a Host header to the ingress Service's ClusterIP,
  // from the client pod; the whole response ("" when none came).
  std::string Ask(const std::string& host, const std::string& path) {
    testing::ProbeResult r = testing::ExchangeIn(
        client_ns_, ingress_ip_, 80,
        "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n", "",
        seconds(5));
    return r.ok() ? r.body : "";
  }
  static std::string Body(const std::string& resp) {
    size_t end = resp.find("\r\n\r\n");
    return end == std::string::npos ? "" : resp.substr(end + 4);
  }
  bool Ready(const std::string& ns, const std::string& selector, int want) {
    const Json pods = c_.GetJson({"pods", "-n", ns, "-l", selector});
    int ready = 0;
    for (const auto& p : pods["items"]) {
      for (const auto& cond : p["status"].value("conditions", Json::array())) {
        if (cond.value("type", "") == "Ready" && cond.value("status", "") == "True") ++ready;
      }
    }
    return ready == want;
  }

  E2eCluster c_{'i'};
  bool created_ = false;
  std::string client_ns_, ingress_ip_;
};

TEST_F(IngressE2E, HostsPathsHeadersTlsUpgradeAndScaleToZero) {
  // The controller, as ingress-nginx on kind: its namespace, the default
  // class, a Ready pod behind a LoadBalancer Service on 80 and 443.
  ASSERT_TRUE(E2eCluster::WaitFor(
      [&] { return Ready("ingress-nginx", "app.kubernetes.io/component=controller", 1); },
      seconds(60)))
      << c_.Ok({"get", "pods", "-A", "-o", "wide"});
  Json cls = c_.GetJson({"ingressclass", "kin"});
  EXPECT_EQ(cls["spec"].value("controller", ""), "kin.dev/ingress");
  EXPECT_EQ(cls["metadata"]["annotations"].value("ingressclass.kubernetes.io/is-default-class", ""),
            "true");
  Json svc = c_.GetJson({"service", "ingress-controller", "-n", "ingress-nginx"});
  EXPECT_EQ(svc["spec"].value("type", ""), "LoadBalancer");
  ingress_ip_ = svc["spec"].value("clusterIP", "");
  ASSERT_FALSE(ingress_ip_.empty());

  // The TLS Secret, from a certificate openssl makes.
  const std::string crt = c_.File("secure.crt"), key = c_.File("secure.key");
  CommandResult ossl =
      RunCommand({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-nodes", "-days", "2", "-subj", "/CN=secure.example", "-addext",
                  "subjectAltName=DNS:secure.example", "-keyout", key, "-out", crt});
  ASSERT_TRUE(ossl.status.success()) << ossl.err;
  c_.Ok({"create", "secret", "tls", "secure-tls", "--cert", crt, "--key", key});

  c_.Apply(Apps());
  Json client = c_.WaitPodReady("client");
  ASSERT_FALSE(client.is_null());
  client_ns_ = c_.PodNetns(client);
  for (const char* app : {"alpha", "beta", "echo", "ws"}) {
    ASSERT_TRUE(E2eCluster::WaitFor([&] { return Ready("default", std::string("app=") + app, 1); },
                                    seconds(60)))
        << app << "\n"
        << c_.Ok({"get", "pods", "-o", "wide"});
  }

  // Hosts and paths: each request reaches its Service's pod.
  ASSERT_TRUE(E2eCluster::WaitFor(
      [&] { return Body(Ask("alpha.example", "/")).rfind("alpha-", 0) == 0; }, seconds(20)))
      << Ask("alpha.example", "/") << c_.Log();
  EXPECT_THAT(Body(Ask("alpha.example", "/anything/deep")), StartsWith("alpha-"));
  EXPECT_THAT(Body(Ask("alpha.example", "/api/v1")), StartsWith("beta-"));
  EXPECT_THAT(Body(Ask("alpha.example", "/apix")), StartsWith("alpha-"));  // element-wise
  EXPECT_THAT(Body(Ask("beta.example:80", "/")), StartsWith("beta-"));
  EXPECT_THAT(Body(Ask("gamma.example", "/")), StartsWith("alpha-"));
  EXPECT_THAT(Ask("nobody.example", "/"), StartsWith("HTTP/1.1 404 Not Found\r\n"));

  // The controller's NodePort on a node's address reaches it too.
  {
    Json svc_now = c_.GetJson({"service", "ingress-controller", "-n", "ingress-nginx"});
    const int node_port = svc_now["spec"]["ports"][0].value("nodePort", 0);
    std::string node_ip;
    // On the node that runs the controller's pod (the Service's policy is Local).
    const Json pods =
        c_.GetJson({"pods", "-n", "ingress-nginx", "-l", "app.kubernetes.io/component=controller"});
    ASSERT_EQ(pods["items"].size(), 1u);
    const Json node = c_.GetJson({"node", pods["items"][0]["spec"].value("nodeName", "")});
    for (const auto& a : node["status"]["addresses"]) {
      if (a.value("type", "") == "InternalIP") node_ip = a.value("address", "");
    }
    ASSERT_GT(node_port, 0);
    testing::ProbeResult np = testing::ExchangeIn(
        client_ns_, node_ip, node_port,
        "GET / HTTP/1.1\r\nHost: beta.example\r\nConnection: close\r\n\r\n", "", seconds(5));
    EXPECT_TRUE(np.ok()) << np.error;
    EXPECT_THAT(Body(np.body), StartsWith("beta-")) << node_ip << ":" << node_port;
  }

  // The backend sees who the client was.
  const std::string client_ip = client["status"].value("podIP", "");
  EXPECT_EQ(Body(Ask("beta.example", "/header?key=X-Forwarded-For")), client_ip);
  EXPECT_EQ(Body(Ask("beta.example", "/header?key=X-Real-Ip")), client_ip);
  EXPECT_EQ(Body(Ask("beta.example", "/header?key=X-Forwarded-Host")), "beta.example");
  EXPECT_EQ(Body(Ask("beta.example", "/header?key=X-Forwarded-Proto")), "http");

  // TLS: the Secret's certificate verifies for its host (curl from the
  // client pod's namespace, resolving the host to the ingress Service).
  CommandResult tls =
      RunCommand({"ip", "netns", "exec", client_ns_, "curl", "-sS", "--max-time", "5", "--cacert",
                  crt, "--resolve", "secure.example:443:" + ingress_ip_, "https://secure.example/"},
                 seconds(20));
  EXPECT_TRUE(tls.status.success()) << tls.err;
  EXPECT_THAT(tls.out, StartsWith("alpha-"));
  // Another name gets the default (self-signed) certificate, which does not verify.
  CommandResult other =
      RunCommand({"ip", "netns", "exec", client_ns_, "curl", "-sS", "--max-time", "5", "--cacert",
                  crt, "--resolve", "beta.example:443:" + ingress_ip_, "https://beta.example/"},
                 seconds(20));
  EXPECT_FALSE(other.status.success());
  CommandResult insecure = RunCommand(
      {"ip", "netns", "exec", client_ns_, "curl", "-sSk", "--max-time", "5", "--resolve",
       "beta.example:443:" + ingress_ip_, "https://beta.example/header?key=X-Forwarded-Proto"},
      seconds(20));
  EXPECT_EQ(insecure.out, "https") << insecure.err;

  // Plain HTTP to a host with TLS is redirected, as ingress-nginx does.
  std::string redirect = Ask("secure.example", "/x?y=1");
  EXPECT_THAT(redirect, StartsWith("HTTP/1.1 308 Permanent Redirect\r\n"));
  EXPECT_THAT(redirect, HasSubstr("Location: https://secure.example/x?y=1\r\n"));

  // An upgrade: 101, then bytes both ways.
  testing::ProbeResult ws = testing::ExchangeIn(
      client_ns_, ingress_ip_, 80,
      "GET /ws HTTP/1.1\r\nHost: alpha.example\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
      "ping-through-ingress\n",
      "ping-through-ingress", seconds(5));
  EXPECT_TRUE(ws.ok()) << ws.error << " " << ws.body;
  EXPECT_THAT(ws.body, StartsWith("HTTP/1.1 101 Switching Protocols\r\n"));
  EXPECT_THAT(Body(ws.body), HasSubstr("ping-through-ingress"));

  // Scaled to zero: 503; back to one: served again.
  c_.Ok({"scale", "deployment", "beta", "--replicas=0"});
  ASSERT_TRUE(E2eCluster::WaitFor(
      [&] { return Ask("beta.example", "/").rfind("HTTP/1.1 503 ", 0) == 0; }, seconds(30)))
      << Ask("beta.example", "/");
  EXPECT_THAT(Body(Ask("beta.example", "/")), HasSubstr("503 Service Temporarily Unavailable"));
  c_.Ok({"scale", "deployment", "beta", "--replicas=1"});
  ASSERT_TRUE(E2eCluster::WaitFor(
      [&] { return Body(Ask("beta.example", "/")).rfind("beta-", 0) == 0; }, seconds(60)))
      << Ask("beta.example", "/");

  // kubectl get ingress: class kin, and the LB Service's address once it
  // has one (the LoadBalancer controller gives it; without one in this
  // build, the test plays its part by writing the Service's status).
  // The controller's Event on the Ingress, as ingress-nginx records.
  EXPECT_TRUE(E2eCluster::WaitFor([&] {
    return c_.Ok({"get", "events", "--field-selector", "involvedObject.name=demo"})
               .find("Scheduled for sync") != std::string::npos;
  }));
  std::string table = c_.Ok({"get", "ingress", "demo"});
  EXPECT_THAT(table, HasSubstr("kin"));
  EXPECT_THAT(table, HasSubstr("alpha.example,beta.example"));
  auto lb_ip = [&] {
    Json s = c_.GetJson({"service", "ingress-controller", "-n", "ingress-nginx"});
    Json in = s["status"]["loadBalancer"].value("ingress", Json::array());
    return in.empty() ? std::string() : in[0].value("ip", "");
  };
  // The LoadBalancer controller gives the controller's Service an address.
  ASSERT_TRUE(E2eCluster::WaitFor([&] { return !lb_ip().empty(); }, seconds(30)))
      << c_.Ok({"get", "service", "-A"});
  const std::string address = lb_ip();
  ASSERT_FALSE(address.empty());
  ASSERT_TRUE(E2eCluster::WaitFor(
      [&] {
        return c_.Ok({"get", "ingress", "demo"}).find(address) != std::string::npos;
      },
      seconds(10)))
      << c_.Ok({"get", "ingress", "demo", "-o", "yaml"});
  // And that address answers from the cluster's internet, on 80 and 443.
  const std::string internet = c_.Prefix() + "ext";
  ASSERT_TRUE(E2eCluster::WaitFor(
      [&] {
        testing::ProbeResult r = testing::ExchangeIn(
            internet, address, 80,
            "GET / HTTP/1.1\r\nHost: beta.example\r\nConnection: close\r\n\r\n", "", seconds(3));
        return r.ok() && Body(r.body).rfind("beta-", 0) == 0;
      },
      seconds(20)));
  // With the Service's policy Local, the backend hears the outside client's
  // own address (the internet namespace's), not a node's.
  testing::ProbeResult xff = testing::ExchangeIn(
      internet, address, 80,
      "GET /header?key=X-Forwarded-For HTTP/1.1\r\nHost: beta.example\r\nConnection: "
      "close\r\n\r\n",
      "", seconds(5));
  EXPECT_THAT(Body(xff.body), StartsWith("203.0.113.")) << xff.body;
  CommandResult from_internet =
      RunCommand({"ip", "netns", "exec", internet, "curl", "-sS", "--max-time", "5", "--cacert",
                  crt, "--resolve", "secure.example:443:" + address, "https://secure.example/"},
                 seconds(20));
  EXPECT_THAT(from_internet.out, StartsWith("alpha-")) << from_internet.err;
}

TEST_F(IngressE2E, AfterAKilledServeTheSameControllerPodServesAgain) {
  ASSERT_TRUE(E2eCluster::WaitFor(
      [&] { return Ready("ingress-nginx", "app.kubernetes.io/component=controller", 1); },
      seconds(60)));
  c_.Apply(Apps());
  Json client = c_.WaitPodReady("client");
  ASSERT_FALSE(client.is_null());
  client_ns_ = c_.PodNetns(client);
  ingress_ip_ = c_.GetJson({"service", "ingress-controller", "-n", "ingress-nginx"})["spec"].value(
      "clusterIP", "");
  auto served = [&] { return Body(Ask("beta.example", "/")).rfind("beta-", 0) == 0; };
  ASSERT_TRUE(E2eCluster::WaitFor(served, seconds(60))) << c_.Ok({"get", "pods", "-A"});
  auto controller_pods = [&] {
    std::set<std::string> uids;
    const Json pods =
        c_.GetJson({"pods", "-n", "ingress-nginx", "-l", "app.kubernetes.io/component=controller"});
    for (const auto& p : pods["items"]) uids.insert(p["metadata"].value("uid", ""));
    return uids;
  };
  const std::set<std::string> before = controller_pods();
  ASSERT_EQ(before.size(), 1u);

  c_.KillServe();
  CommandResult r = c_.Kin({"cluster", "start", "--name", c_.name()});
  ASSERT_TRUE(r.status.success()) << r.out << r.err << c_.Log();
  // The pod kept running; the restarted kin serve proxies in it again, with
  // routes made afresh from the API.
  EXPECT_TRUE(E2eCluster::WaitFor(served, seconds(30))) << Ask("beta.example", "/") << c_.Log();
  EXPECT_EQ(controller_pods(), before);
}

}  // namespace
}  // namespace kin
