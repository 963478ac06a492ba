#include "runtime/pod_spec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/strings.h"

namespace kin {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

Json Pod(Json spec = Json::object(), Json meta = Json::object()) {
  Json m = {{"name", "web-0"}, {"namespace", "shop"}, {"uid", "u-123"}};
  m.update(meta);
  return Json{{"metadata", m}, {"spec", spec}};
}

Code CodeOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "no error thrown";
  return Code::kInternal;
}

std::string MessageOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.message();
  }
  ADD_FAILURE() << "no error thrown";
  return "";
}

// -- hostname -----------------------------------------------------------------

TEST(PodHostnameTest, SpecHostnameElseName) {
  EXPECT_EQ(PodHostname(Pod()), "web-0");
  EXPECT_EQ(PodHostname(Pod({{"hostname", "h1"}})), "h1");
}

TEST(PodHostnameTest, TruncatesTo63AndTrimsTrailingDashAndDot) {
  std::string name = std::string(60, 'a') + "-.-bbbb";
  EXPECT_EQ(PodHostname(Pod({}, {{"name", name}})), std::string(60, 'a'));
  std::string exact(63, 'c');
  EXPECT_EQ(PodHostname(Pod({}, {{"name", exact}})), exact);
}

TEST(PodHostnameTest, FqdnOnlyWithSubdomain) {
  EXPECT_EQ(PodFqdn(Pod(), "cluster.local"), "");
  EXPECT_EQ(PodFqdn(Pod({{"hostname", "h1"}, {"subdomain", "sub"}}), "cluster.local"),
            "h1.sub.shop.svc.cluster.local");
}

// -- /etc/hosts ---------------------------------------------------------------

constexpr const char* kHostsHeader =
    "# Kubernetes-managed hosts file.\n"
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n";

TEST(RenderEtcHostsTest, WithoutSubdomain) {
  EXPECT_EQ(RenderEtcHosts(Pod(), "10.1.0.5", "cluster.local"),
            std::string(kHostsHeader) + "10.1.0.5\tweb-0\n");
}

TEST(RenderEtcHostsTest, WithSubdomain) {
  EXPECT_EQ(RenderEtcHosts(Pod({{"subdomain", "web"}}), "10.1.0.5", "cluster.local"),
            std::string(kHostsHeader) + "10.1.0.5\tweb-0.web.shop.svc.cluster.local\tweb-0\n");
}

TEST(RenderEtcHostsTest, WithHostAliases) {
  Json spec = {{"hostAliases",
                {{{"ip", "127.0.0.1"}, {"hostnames", {"foo.local", "bar.local"}}},
                 {{"ip", "10.1.2.3"}, {"hostnames", {"foo.remote"}}}}}};
  EXPECT_EQ(RenderEtcHosts(Pod(spec), "10.1.0.5", "cluster.local"),
            std::string(kHostsHeader) +
                "10.1.0.5\tweb-0\n"
                "\n# Entries added by HostAliases.\n"
                "127.0.0.1\tfoo.local\tbar.local\n"
                "10.1.2.3\tfoo.remote\n");
}

// -- resolv.conf --------------------------------------------------------------

DnsSettings Dns() {
  DnsSettings dns;
  dns.cluster_dns = {"10.96.0.10"};
  dns.host_resolv_conf =
      "# generated\n"
      "nameserver 192.168.1.1\n"
      "nameserver 192.168.1.2\n"
      "search old.example\n"
      "search corp.example. .\n"
      "options edns0 ndots:2\n";
  return dns;
}

TEST(RenderResolvConfTest, ClusterFirstIsTheDefault) {
  std::string expected =
      "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
      "nameserver 10.96.0.10\n"
      "options ndots:5\n";
  EXPECT_EQ(RenderResolvConf(Pod(), Dns()), expected);
  EXPECT_EQ(RenderResolvConf(Pod({{"dnsPolicy", "ClusterFirst"}}), Dns()), expected);
}

TEST(RenderResolvConfTest, DefaultUsesTheHostsSettings) {
  std::string host =
      "search corp.example\n"
      "nameserver 192.168.1.1\n"
      "nameserver 192.168.1.2\n"
      "options edns0 ndots:2\n";
  EXPECT_EQ(RenderResolvConf(Pod({{"dnsPolicy", "Default"}}), Dns()), host);
  // ClusterFirst on the host network behaves like Default ...
  EXPECT_EQ(RenderResolvConf(Pod({{"dnsPolicy", "ClusterFirst"}, {"hostNetwork", true}}), Dns()),
            host);
  // ... unless the pod asks for ClusterFirstWithHostNet.
  EXPECT_THAT(RenderResolvConf(
                  Pod({{"dnsPolicy", "ClusterFirstWithHostNet"}, {"hostNetwork", true}}), Dns()),
              HasSubstr("nameserver 10.96.0.10\n"));
  // Without cluster DNS, ClusterFirst falls back to the host's settings.
  DnsSettings no_cluster = Dns();
  no_cluster.cluster_dns.clear();
  EXPECT_EQ(RenderResolvConf(Pod(), no_cluster), host);
}

TEST(RenderResolvConfTest, NoneUsesOnlyDnsConfig) {
  Json spec = {{"dnsPolicy", "None"},
               {"dnsConfig",
                {{"nameservers", {"1.1.1.1"}},
                 {"searches", {"a.example", "b.example"}},
                 {"options", {{{"name", "ndots"}, {"value", "1"}}, {{"name", "edns0"}}}}}}};
  EXPECT_EQ(RenderResolvConf(Pod(spec), Dns()),
            "search a.example b.example\n"
            "nameserver 1.1.1.1\n"
            "options ndots:1 edns0\n");
  // None without dnsConfig is the API's to reject; here it is just empty.
  EXPECT_EQ(RenderResolvConf(Pod({{"dnsPolicy", "None"}}), Dns()), "");
}

TEST(RenderResolvConfTest, DnsConfigMergesIntoEveryPolicy) {
  Json config = {{"nameservers", {"10.96.0.10", "8.8.8.8"}},
                 {"searches", {"extra.example", "cluster.local"}},
                 {"options", {{{"name", "ndots"}, {"value", "2"}}, {{"name", "single-request"}}}}};
  EXPECT_EQ(RenderResolvConf(Pod({{"dnsConfig", config}}), Dns()),
            "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example "
            "extra.example\n"
            "nameserver 10.96.0.10\n"
            "nameserver 8.8.8.8\n"
            "options ndots:2 single-request\n");
  EXPECT_EQ(RenderResolvConf(Pod({{"dnsPolicy", "Default"}, {"dnsConfig", config}}), Dns()),
            "search corp.example extra.example cluster.local\n"
            "nameserver 192.168.1.1\n"
            "nameserver 192.168.1.2\n"
            "nameserver 10.96.0.10\n"
            "options edns0 ndots:2 single-request\n");
}

TEST(RenderResolvConfTest, KeepsAtMostThreeNameservers) {
  Json spec = {{"dnsPolicy", "None"},
               {"dnsConfig", {{"nameservers", {"1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"}}}}};
  EXPECT_EQ(RenderResolvConf(Pod(spec), Dns()),
            "nameserver 1.1.1.1\nnameserver 2.2.2.2\nnameserver 3.3.3.3\n");
}

// -- service links ------------------------------------------------------------

Json Service(const std::string& ns, const std::string& name, const std::string& ip, Json ports) {
  return Json{{"metadata", {{"name", name}, {"namespace", ns}}},
              {"spec", {{"clusterIP", ip}, {"ports", ports}}}};
}

Json Services() {
  return Json::array(
      {Service("shop", "foo-bar", "10.0.0.11",
               {{{"name", "http"}, {"port", 80}, {"protocol", "TCP"}},
                {{"name", "dns-udp"}, {"port", 53}, {"protocol", "UDP"}}}),
       Service("shop", "headless", "None", {{{"port", 80}}}),
       Service("other", "elsewhere", "10.0.0.99", {{{"port", 80}}}),
       Service("default", "kubernetes", "10.0.0.1", {{{"name", "https"}, {"port", 443}}})});
}

TEST(ServiceEnvVarsTest, TwoNamedPortsAndTheKubernetesService) {
  EXPECT_THAT(
      ServiceEnvVars(Pod(), Services()),
      ElementsAre("FOO_BAR_SERVICE_HOST=10.0.0.11",   //
                  "FOO_BAR_SERVICE_PORT=80",          //
                  "FOO_BAR_SERVICE_PORT_HTTP=80",     //
                  "FOO_BAR_SERVICE_PORT_DNS_UDP=53",  //
                  "FOO_BAR_PORT=tcp://10.0.0.11:80",  //
                  "FOO_BAR_PORT_80_TCP=tcp://10.0.0.11:80",
                  "FOO_BAR_PORT_80_TCP_PROTO=tcp",  //
                  "FOO_BAR_PORT_80_TCP_PORT=80",    //
                  "FOO_BAR_PORT_80_TCP_ADDR=10.0.0.11", "FOO_BAR_PORT_53_UDP=udp://10.0.0.11:53",
                  "FOO_BAR_PORT_53_UDP_PROTO=udp",  //
                  "FOO_BAR_PORT_53_UDP_PORT=53",    //
                  "FOO_BAR_PORT_53_UDP_ADDR=10.0.0.11",
                  "KUBERNETES_SERVICE_HOST=10.0.0.1",  //
                  "KUBERNETES_SERVICE_PORT=443",       //
                  "KUBERNETES_SERVICE_PORT_HTTPS=443", "KUBERNETES_PORT=tcp://10.0.0.1:443",
                  "KUBERNETES_PORT_443_TCP=tcp://10.0.0.1:443",
                  "KUBERNETES_PORT_443_TCP_PROTO=tcp",  //
                  "KUBERNETES_PORT_443_TCP_PORT=443", "KUBERNETES_PORT_443_TCP_ADDR=10.0.0.1"));
}

TEST(ServiceEnvVarsTest, EnableServiceLinksFalseKeepsOnlyKubernetes) {
  auto vars = ServiceEnvVars(Pod({{"enableServiceLinks", false}}), Json{{"items", Services()}});
  ASSERT_FALSE(vars.empty());
  for (const auto& v : vars) EXPECT_EQ(v.rfind("KUBERNETES_", 0), 0u) << v;
}

// -- environment --------------------------------------------------------------

struct FakeApi {
  std::map<std::string, Json> objects;  // "Kind/ns/name"
  int calls = 0;
  EnvContext Context() {
    EnvContext ctx;
    ctx.pod_ip = "10.1.0.5";
    ctx.host_ip = "192.168.1.10";
    ctx.node_name = "node-a";
    ctx.lookup = [this](const std::string& kind, const std::string& ns,
                        const std::string& name) -> std::optional<Json> {
      ++calls;
      auto it = objects.find(kind + "/" + ns + "/" + name);
      if (it == objects.end()) return std::nullopt;
      return it->second;
    };
    return ctx;
  }
};

FakeApi Api() {
  FakeApi api;
  api.objects["ConfigMap/shop/cfg"] = {
      {"data", {{"color", "blue"}, {"size", "L"}, {"bad key", "x"}}}};
  api.objects["Secret/shop/creds"] = {
      {"data", {{"user", Base64Encode("admin")}, {"pass", Base64Encode("s3cr3t")}}}};
  return api;
}

std::map<std::string, std::string> AsMap(const std::vector<std::string>& env) {
  std::map<std::string, std::string> m;
  for (const auto& e : env) m[e.substr(0, e.find('='))] = e.substr(e.find('=') + 1);
  return m;
}

TEST(ResolveContainerEnvTest, OrderAndOverrides) {
  FakeApi api = Api();
  EnvContext ctx = api.Context();
  ctx.service_env = {"SVC_SERVICE_HOST=10.0.0.7", "SHADOWED=from-service"};
  ImageConfig image;
  image.env = {"PATH=/opt/bin:/bin", "LANG=C", "SHADOWED=from-image"};
  Json container = {
      {"name", "app"},
      {"envFrom",
       {{{"configMapRef", {{"name", "cfg"}}}, {"prefix", "CFG_"}},
        {{"secretRef", {{"name", "creds"}}}}}},
      {"env",
       {{{"name", "SHADOWED"}, {"value", "from-pod"}}, {{"name", "LANG"}, {"value", "en"}}}}};
  EXPECT_THAT(ResolveContainerEnv(Pod(), container, image, ctx),
              ElementsAre("HOSTNAME=web-0", "PATH=/opt/bin:/bin", "LANG=en", "SHADOWED=from-pod",
                          "SVC_SERVICE_HOST=10.0.0.7", "CFG_color=blue", "CFG_size=L",
                          "pass=s3cr3t", "user=admin"));
  // Each ConfigMap/Secret is fetched once.
  EXPECT_EQ(api.calls, 2);
}

TEST(ResolveContainerEnvTest, DefaultPathWhenTheImageHasNone) {
  FakeApi api = Api();
  auto env = ResolveContainerEnv(Pod(), Json{{"name", "c"}}, ImageConfig{}, api.Context());
  EXPECT_THAT(env,
              ElementsAre("HOSTNAME=web-0",
                          "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
}

TEST(ResolveContainerEnvTest, ExpandsReferences) {
  FakeApi api = Api();
  EnvContext ctx = api.Context();
  ctx.service_env = {"SVC_SERVICE_HOST=10.0.0.7"};
  ImageConfig image;
  image.env = {"FROM_IMAGE=img"};
  Json container = {{"name", "c"},
                    {"env",
                     {{{"name", "A"}, {"value", "a"}},
                      {{"name", "B"}, {"value", "$(A)-$(SVC_SERVICE_HOST)"}},
                      {{"name", "C"}, {"value", "$$(A) $(LATER) $(FROM_IMAGE) $(A"}},
                      {{"name", "D"}, {"value", "cost $5 $"}},
                      {{"name", "LATER"}, {"value", "z"}}}}};
  auto env = AsMap(ResolveContainerEnv(Pod(), container, image, ctx));
  EXPECT_EQ(env["B"], "a-10.0.0.7");
  // $$ escapes; names defined later, image vars and unterminated refs stay literal.
  EXPECT_EQ(env["C"], "$(A) $(LATER) $(FROM_IMAGE) $(A");
  EXPECT_EQ(env["D"], "cost $5 $");
}

TEST(ExpandEnvReferencesTest, KubernetesRules) {
  std::vector<std::string> env = {"X=1", "Y=two", "X=shadowed"};
  EXPECT_EQ(ExpandEnvReferences("$(X)$(Y)", env), "1two");
  EXPECT_EQ(ExpandEnvReferences("$$(X)", env), "$(X)");
  EXPECT_EQ(ExpandEnvReferences("$$$(X)", env), "$1");
  EXPECT_EQ(ExpandEnvReferences("$(NOPE)", env), "$(NOPE)");
  EXPECT_EQ(ExpandEnvReferences("$X $", env), "$X $");
  EXPECT_EQ(ExpandEnvReferences("$(X", env), "$(X");
  EXPECT_EQ(ExpandEnvReferences("$()", env), "$()");
}

TEST(ExpandReferencesTest, MappingSeesEveryReferenceAndNothingElse) {
  std::vector<std::string> asked;
  auto mapping = [&](const std::string& name) {
    asked.push_back(name);
    return "<" + name + ">";
  };
  EXPECT_EQ(ExpandReferences("a$(X)b$$(Y)$()$(Z", mapping), "a<X>b$(Y)<>$(Z");
  EXPECT_THAT(asked, ElementsAre("X", ""));  // "$()" asks for the empty name, as Go's Expand
}

// -- downward API ---------------------------------------------------------------

TEST(FormatDownwardMapTest, SortedGoQuotedLines) {
  EXPECT_EQ(FormatDownwardMap({{"z", "1"}, {"a", "q\"t"}}), "a=\"q\\\"t\"\nz=\"1\"");
  EXPECT_EQ(FormatDownwardMap(Json::object()), "");
  EXPECT_EQ(FormatDownwardMap(nullptr), "");
}

TEST(PodFieldValueTest, ContextFirstThenThePodsStatus) {
  Json pod = Pod({{"nodeName", "node-a"}});
  pod["status"] = {{"podIP", "10.9.9.9"}, {"hostIP", "192.168.9.9"}};
  EXPECT_EQ(PodFieldValue(pod, "status.podIP", {"10.1.0.5", "192.168.1.10", "n"}), "10.1.0.5");
  EXPECT_EQ(PodFieldValue(pod, "status.hostIP", {"10.1.0.5", "192.168.1.10", "n"}), "192.168.1.10");
  EXPECT_EQ(PodFieldValue(pod, "status.podIPs", {}), "10.9.9.9");
  EXPECT_EQ(PodFieldValue(pod, "status.hostIPs", {}), "192.168.9.9");
  EXPECT_EQ(PodFieldValue(pod, "spec.nodeName", {"", "", "other"}), "node-a");
  EXPECT_EQ(PodFieldValue(Pod(), "spec.nodeName", {"", "", "other"}), "other");
  EXPECT_EQ(PodFieldValue(Pod(), "spec.serviceAccountName", {}), "");  // kubelet: as stored
  EXPECT_EQ(MessageOf([&] { PodFieldValue(pod, "metadata.labels['x'", {}); }),
            "unsupported fieldPath: metadata.labels['x'");
}

TEST(ContainerResourceValueTest, NamedContainerRequestsDefaultAndErrors) {
  Json pod =
      Pod({{"containers",
            {{{"name", "app"},
              {"resources",
               {{"limits", {{"cpu", "250m"}, {"memory", "64Mi"}, {"hugepages-2Mi", "4Mi"}}}}}}}},
           {"initContainers", {{{"name", "init"}}}}});
  NodeAllocatable node{2000, 8LL << 30, 100LL << 30};
  auto value = [&](Json ref) { return ContainerResourceValue(pod, ref, Json(), node); };
  // An unset request reports the limit, as API defaulting copies it.
  EXPECT_EQ(value({{"containerName", "app"}, {"resource", "requests.cpu"}, {"divisor", "1m"}}),
            "250");
  EXPECT_EQ(
      value({{"containerName", "app"}, {"resource", "limits.hugepages-2Mi"}, {"divisor", "1Mi"}}),
      "4");
  EXPECT_EQ(value({{"containerName", "app"}, {"resource", "limits.memory"}, {"divisor", 0}}),
            "67108864");  // a zero divisor counts as 1
  EXPECT_EQ(value({{"containerName", "init"},
                   {"resource", "limits.ephemeral-storage"},
                   {"divisor", "1Gi"}}),
            "100");
  EXPECT_EQ(value({{"containerName", "init"}, {"resource", "requests.memory"}}), "0");
  EXPECT_EQ(MessageOf([&] { value({{"resource", "limits.cpu"}}); }), "container  not found");
  EXPECT_EQ(MessageOf([&] {
              value({{"containerName", "x"}, {"resource", "limits.cpu"}});
            }),
            "container x not found");
  EXPECT_EQ(MessageOf([&] {
              value({{"containerName", "app"}, {"resource", "limits.gpu"}});
            }),
            "unsupported container resource : limits.gpu");
  EXPECT_EQ(MessageOf([&] {
              value({{"containerName", "app"}, {"resource", "limits.cpu"}, {"divisor", "x"}});
            }),
            "invalid divisor \"x\" for limits.cpu");
}

TEST(ResolveContainerEnvTest, EveryFieldRef) {
  FakeApi api = Api();
  Json pod = Pod(
      {{"nodeName", "node-a"}, {"serviceAccountName", "robot"}},
      {{"labels", {{"app", "web"}, {"tier", "front"}}}, {"annotations", {{"note", "say \"hi\""}}}});
  std::vector<std::pair<std::string, std::string>> cases = {
      {"metadata.name", "web-0"},
      {"metadata.namespace", "shop"},
      {"metadata.uid", "u-123"},
      {"metadata.labels['app']", "web"},
      {"metadata.labels['missing']", ""},
      {"metadata.annotations['note']", "say \"hi\""},
      {"metadata.labels", "app=\"web\"\ntier=\"front\""},
      {"metadata.annotations", "note=\"say \\\"hi\\\"\""},
      {"spec.nodeName", "node-a"},
      {"spec.serviceAccountName", "robot"},
      {"status.hostIP", "192.168.1.10"},
      {"status.hostIPs", "192.168.1.10"},
      {"status.podIP", "10.1.0.5"},
      {"status.podIPs", "10.1.0.5"},
  };
  Json env = Json::array();
  for (size_t i = 0; i < cases.size(); ++i) {
    env.push_back({{"name", "V" + std::to_string(i)},
                   {"valueFrom", {{"fieldRef", {{"fieldPath", cases[i].first}}}}}});
  }
  auto got = AsMap(ResolveContainerEnv(pod, Json{{"name", "c"}, {"env", env}}, {}, api.Context()));
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(got["V" + std::to_string(i)], cases[i].second) << cases[i].first;
  }
  Json bad = {
      {"name", "c"},
      {"env", {{{"name", "X"}, {"valueFrom", {{"fieldRef", {{"fieldPath", "spec.foo"}}}}}}}}};
  EXPECT_EQ(MessageOf([&] { ResolveContainerEnv(pod, bad, {}, api.Context()); }),
            "unsupported fieldPath: spec.foo");
}

TEST(ResolveContainerEnvTest, ResourceFieldRefWithDivisor) {
  FakeApi api = Api();
  EnvContext ctx = api.Context();
  ctx.node_allocatable_millicpu = 2000;
  ctx.node_allocatable_memory = 8LL << 30;
  auto ref = [](const std::string& name, const std::string& resource, Json divisor = nullptr) {
    Json r = {{"resource", resource}};
    if (!divisor.is_null()) r["divisor"] = divisor;
    return Json{{"name", name}, {"valueFrom", {{"resourceFieldRef", r}}}};
  };
  Json container = {
      {"name", "c"},
      {"resources",
       {{"limits", {{"cpu", "1250m"}, {"memory", "64Mi"}}},
        {"requests", {{"cpu", "250m"}, {"memory", "32Mi"}}}}},
      {"env",
       {ref("CPU_LIMIT", "limits.cpu"), ref("CPU_LIMIT_M", "limits.cpu", "1m"),
        ref("MEM_LIMIT", "limits.memory"), ref("MEM_LIMIT_MI", "limits.memory", "1Mi"),
        ref("CPU_REQ", "requests.cpu"), ref("MEM_REQ_KI", "requests.memory", "1Ki")}}};
  auto env = AsMap(ResolveContainerEnv(Pod(), container, {}, ctx));
  EXPECT_EQ(env["CPU_LIMIT"], "2");  // rounded up
  EXPECT_EQ(env["CPU_LIMIT_M"], "1250");
  EXPECT_EQ(env["MEM_LIMIT"], "67108864");
  EXPECT_EQ(env["MEM_LIMIT_MI"], "64");
  EXPECT_EQ(env["CPU_REQ"], "1");
  EXPECT_EQ(env["MEM_REQ_KI"], "32768");
  // No limits: the node's allocatable.
  Json unlimited = {{"name", "c"},
                    {"env", {ref("CPU", "limits.cpu", "1m"), ref("MEM", "limits.memory", "1Gi")}}};
  env = AsMap(ResolveContainerEnv(Pod(), unlimited, {}, ctx));
  EXPECT_EQ(env["CPU"], "2000");
  EXPECT_EQ(env["MEM"], "8");
}

TEST(ResolveContainerEnvTest, KeyRefs) {
  FakeApi api = Api();
  Json container = {
      {"name", "c"},
      {"env",
       {{{"name", "COLOR"},
         {"valueFrom", {{"configMapKeyRef", {{"name", "cfg"}, {"key", "color"}}}}}},
        {{"name", "PASS"}, {"valueFrom", {{"secretKeyRef", {{"name", "creds"}, {"key", "pass"}}}}}},
        {{"name", "OPT_KEY"},
         {"valueFrom",
          {{"configMapKeyRef", {{"name", "cfg"}, {"key", "nope"}, {"optional", true}}}}}},
        {{"name", "OPT_CM"},
         {"valueFrom",
          {{"secretKeyRef", {{"name", "gone"}, {"key", "k"}, {"optional", true}}}}}}}}};
  auto env = AsMap(ResolveContainerEnv(Pod(), container, {}, api.Context()));
  EXPECT_EQ(env["COLOR"], "blue");
  EXPECT_EQ(env["PASS"], "s3cr3t");
  EXPECT_EQ(env.count("OPT_KEY"), 0u);
  EXPECT_EQ(env.count("OPT_CM"), 0u);
}

TEST(ResolveContainerEnvTest, MissingSourcesAreNotFound) {
  FakeApi api = Api();
  auto run = [&](Json env) {
    ResolveContainerEnv(Pod(), Json{{"name", "c"}, {"env", env}}, {}, api.Context());
  };
  auto key_ref = [](const char* kind, const char* name, const char* key) {
    return Json::array({{{"name", "X"}, {"valueFrom", {{kind, {{"name", name}, {"key", key}}}}}}});
  };
  EXPECT_EQ(MessageOf([&] { run(key_ref("configMapKeyRef", "nope", "k")); }),
            "configmap \"nope\" not found");
  EXPECT_EQ(CodeOf([&] { run(key_ref("configMapKeyRef", "nope", "k")); }), Code::kNotFound);
  EXPECT_EQ(MessageOf([&] { run(key_ref("configMapKeyRef", "cfg", "k")); }),
            "couldn't find key k in ConfigMap shop/cfg");
  EXPECT_EQ(MessageOf([&] { run(key_ref("secretKeyRef", "nope", "k")); }),
            "secret \"nope\" not found");
  EXPECT_EQ(MessageOf([&] { run(key_ref("secretKeyRef", "creds", "k")); }),
            "couldn't find key k in Secret shop/creds");
  EXPECT_EQ(CodeOf([&] { run(key_ref("secretKeyRef", "creds", "k")); }), Code::kNotFound);

  Json from_missing = {{"name", "c"}, {"envFrom", {{{"configMapRef", {{"name", "nope"}}}}}}};
  EXPECT_EQ(MessageOf([&] { ResolveContainerEnv(Pod(), from_missing, {}, api.Context()); }),
            "configmap \"nope\" not found");
  Json from_optional = {{"name", "c"},
                        {"envFrom", {{{"secretRef", {{"name", "nope"}, {"optional", true}}}}}}};
  EXPECT_THAT(ResolveContainerEnv(Pod(), from_optional, {}, api.Context()),
              ElementsAre(HasSubstr("HOSTNAME="), HasSubstr("PATH=")));
}

// -- argv ---------------------------------------------------------------------

ImageConfig Image() {
  ImageConfig image;
  image.entrypoint = {"/entry"};
  image.cmd = {"--default"};
  return image;
}

TEST(ContainerArgvTest, CommandAndArgsMergeTable) {
  Json command = {"/bin/sh", "-c"};
  Json args = {"echo hi"};
  EXPECT_THAT(ContainerArgv(Json{{"command", command}, {"args", args}}, Image(), {}),
              ElementsAre("/bin/sh", "-c", "echo hi"));
  EXPECT_THAT(ContainerArgv(Json{{"command", command}}, Image(), {}), ElementsAre("/bin/sh", "-c"));
  EXPECT_THAT(ContainerArgv(Json{{"args", args}}, Image(), {}), ElementsAre("/entry", "echo hi"));
  EXPECT_THAT(ContainerArgv(Json::object(), Image(), {}), ElementsAre("/entry", "--default"));
}

TEST(ContainerArgvTest, ExpandsOnlyThePodsWords) {
  ImageConfig image = Image();
  image.cmd = {"$(X)"};
  std::vector<std::string> env = {"X=1"};
  EXPECT_THAT(ContainerArgv(Json{{"args", {"$(X)", "$$(X)", "$(Y)"}}}, image, env),
              ElementsAre("/entry", "1", "$(X)", "$(Y)"));
  EXPECT_THAT(ContainerArgv(Json{{"command", {"/bin/$(X)"}}}, image, env), ElementsAre("/bin/1"));
  EXPECT_THAT(ContainerArgv(Json::object(), image, env), ElementsAre("/entry", "$(X)"));
}

TEST(ContainerArgvTest, AppliesCommandAliases) {
  ImageConfig image;
  image.entrypoint = {"/agnhost"};
  image.command_aliases = {{"/agnhost", {"/usr/bin/kin", "agnhost"}},
                           {"/pause", {"/usr/bin/kin", "agnhost", "pause"}}};
  EXPECT_THAT(ContainerArgv(Json{{"args", {"netexec", "--http-port=8080"}}}, image, {}),
              ElementsAre("/usr/bin/kin", "agnhost", "netexec", "--http-port=8080"));
  EXPECT_THAT(ContainerArgv(Json{{"command", {"/pause"}}}, image, {}),
              ElementsAre("/usr/bin/kin", "agnhost", "pause"));
  // Only argv[0] is an alias.
  EXPECT_THAT(ContainerArgv(Json{{"command", {"/bin/sh", "/agnhost"}}}, image, {}),
              ElementsAre("/bin/sh", "/agnhost"));
}

TEST(ContainerArgvTest, NoCommandIsInvalid) {
  EXPECT_EQ(CodeOf([] { ContainerArgv(Json::object(), ImageConfig{}, {}); }), Code::kInvalid);
  EXPECT_EQ(MessageOf([] { ContainerArgv(Json::object(), ImageConfig{}, {}); }),
            "no command specified");
  ImageConfig empty_entry;
  empty_entry.entrypoint = {""};
  EXPECT_EQ(CodeOf([&] { ContainerArgv(Json::object(), empty_entry, {}); }), Code::kInvalid);
}

// -- ContainerSpec ------------------------------------------------------------

PodContext Ctx() {
  PodContext ctx;
  ctx.image = Image();
  ctx.image.working_dir = "/srv";
  ctx.log_path = "/var/log/pods/x/c/0.log";
  return ctx;
}

TEST(BuildContainerSpecTest, BasicsAndDefaults) {
  Json c = {{"name", "app"}, {"args", {"run"}}};
  ContainerSpec spec = BuildContainerSpec(Pod(), c, Ctx());
  EXPECT_EQ(spec.name, "app");
  EXPECT_THAT(spec.argv, ElementsAre("/entry", "run"));
  EXPECT_EQ(spec.working_dir, "/srv");
  EXPECT_EQ(spec.hostname, "web-0");
  EXPECT_EQ(spec.log_path, "/var/log/pods/x/c/0.log");
  EXPECT_TRUE(spec.new_mount_ns);
  EXPECT_FALSE(spec.uid.has_value());
  EXPECT_FALSE(spec.gid.has_value());
  EXPECT_THAT(spec.supplemental_groups, IsEmpty());
  EXPECT_EQ(spec.seccomp, SeccompProfile::kRuntimeDefault);
  EXPECT_TRUE(spec.no_new_privs);
  EXPECT_EQ(spec.resources.memory_bytes, 0);
  EXPECT_EQ(spec.resources.cpu_millicores, 0);
  EXPECT_EQ(spec.env.front(), "HOSTNAME=web-0");
  c["workingDir"] = "/app";
  EXPECT_EQ(BuildContainerSpec(Pod(), c, Ctx()).working_dir, "/app");
}

TEST(BuildContainerSpecTest, CommandSeesThePodsVariablesOnly) {
  PodContext ctx = Ctx();
  ctx.image.env = {"FROM_IMAGE=img"};
  ctx.env.service_env = {"SVC_SERVICE_HOST=10.0.0.7"};
  Json c = {{"name", "app"},
            {"command", {"echo", "$(A)", "$(SVC_SERVICE_HOST)", "$(FROM_IMAGE)", "$(HOSTNAME)"}},
            {"env", {{{"name", "A"}, {"value", "a"}}}}};
  EXPECT_THAT(BuildContainerSpec(Pod(), c, ctx).argv,
              ElementsAre("echo", "a", "10.0.0.7", "$(FROM_IMAGE)", "$(HOSTNAME)"));
}

TEST(BuildContainerSpecTest, SecurityContextPrecedence) {
  Json pod = Pod({{"securityContext",
                   {{"runAsUser", 1000},
                    {"runAsGroup", 2000},
                    {"fsGroup", 3000},
                    {"supplementalGroups", {4000, 4001}},
                    {"seccompProfile", {{"type", "Unconfined"}}}}}});
  Json c = {{"name", "app"}};
  PodContext ctx = Ctx();
  ctx.image.user = "5:6";
  ContainerSpec spec = BuildContainerSpec(pod, c, ctx);
  EXPECT_EQ(spec.uid, 1000u);
  EXPECT_EQ(spec.gid, 2000u);
  EXPECT_THAT(spec.supplemental_groups, ElementsAre(3000u, 4000u, 4001u));
  EXPECT_EQ(spec.seccomp, SeccompProfile::kUnconfined);

  c["securityContext"] = {{"runAsUser", 1001},
                          {"seccompProfile", {{"type", "RuntimeDefault"}}},
                          {"capabilities", {{"add", {"NET_ADMIN"}}, {"drop", {"ALL"}}}},
                          {"allowPrivilegeEscalation", true}};
  spec = BuildContainerSpec(pod, c, ctx);
  EXPECT_EQ(spec.uid, 1001u);
  EXPECT_EQ(spec.gid, 2000u);
  EXPECT_EQ(spec.seccomp, SeccompProfile::kRuntimeDefault);
  EXPECT_THAT(spec.cap_add, ElementsAre("NET_ADMIN"));
  EXPECT_THAT(spec.cap_drop, ElementsAre("ALL"));
  EXPECT_FALSE(spec.no_new_privs);

  // Without runAsUser the image's numeric user applies.
  spec = BuildContainerSpec(Pod(), Json{{"name", "app"}}, ctx);
  EXPECT_EQ(spec.uid, 5u);
  EXPECT_EQ(spec.gid, 6u);
  ctx.image.user = "7";
  spec = BuildContainerSpec(Pod(), Json{{"name", "app"}}, ctx);
  EXPECT_EQ(spec.uid, 7u);
  EXPECT_FALSE(spec.gid.has_value());
  ctx.image.user = "nobody";  // names are not resolved here
  EXPECT_FALSE(BuildContainerSpec(Pod(), Json{{"name", "app"}}, ctx).uid.has_value());
}

TEST(BuildContainerSpecTest, RunAsNonRoot) {
  PodContext ctx = Ctx();
  Json pod = Pod({{"securityContext", {{"runAsNonRoot", true}}}});
  EXPECT_EQ(MessageOf([&] {
              BuildContainerSpec(pod, Json{{"name", "app"}}, ctx);
            }),
            "container has runAsNonRoot and image will run as root (pod: \"web-0_shop(u-123)\", "
            "container: app)");
  Json root = {{"name", "app"}, {"securityContext", {{"runAsUser", 0}}}};
  EXPECT_THAT(MessageOf([&] { BuildContainerSpec(pod, root, ctx); }),
              HasSubstr("runAsUser breaks non-root policy"));
  ctx.image.user = "1000";
  EXPECT_EQ(BuildContainerSpec(pod, Json{{"name", "app"}}, ctx).uid, 1000u);
}

TEST(BuildContainerSpecTest, Privileged) {
  Json c = {{"name", "app"},
            {"securityContext",
             {{"privileged", true},
              {"seccompProfile", {{"type", "RuntimeDefault"}}},
              {"capabilities", {{"drop", {"NET_RAW"}}}}}}};
  ContainerSpec spec = BuildContainerSpec(Pod(), c, Ctx());
  EXPECT_THAT(spec.cap_add, ElementsAre("ALL"));
  EXPECT_THAT(spec.cap_drop, IsEmpty());
  EXPECT_EQ(spec.seccomp, SeccompProfile::kUnconfined);
  EXPECT_FALSE(spec.no_new_privs);
}

TEST(BuildContainerSpecTest, LocalhostSeccompIsUnsupported) {
  Json pod = Pod({{"securityContext", {{"seccompProfile", {{"type", "Localhost"}}}}}});
  EXPECT_EQ(CodeOf([&] { BuildContainerSpec(pod, Json{{"name", "app"}}, Ctx()); }), Code::kInvalid);
}

TEST(BuildContainerSpecTest, LimitsConversion) {
  Json c = {{"name", "app"},
            {"resources",
             {{"limits", {{"cpu", "1.5"}, {"memory", "128Mi"}}},
              {"requests", {{"cpu", "100m"}, {"memory", "1Mi"}}}}}};
  ContainerSpec spec = BuildContainerSpec(Pod(), c, Ctx());
  EXPECT_EQ(spec.resources.cpu_millicores, 1500);
  EXPECT_EQ(spec.resources.memory_bytes, 134217728);
  c["resources"]["limits"] = {{"cpu", "250m"}, {"memory", "1G"}};
  spec = BuildContainerSpec(Pod(), c, Ctx());
  EXPECT_EQ(spec.resources.cpu_millicores, 250);
  EXPECT_EQ(spec.resources.memory_bytes, 1000000000);
  c["resources"]["limits"] = {{"memory", "lots"}};
  EXPECT_EQ(CodeOf([&] { BuildContainerSpec(Pod(), c, Ctx()); }), Code::kInvalid);
}

TEST(PodPoliciesTest, GracePeriodAndRestartPolicyDefaults) {
  EXPECT_EQ(TerminationGracePeriodSeconds(Pod()), 30);
  EXPECT_EQ(TerminationGracePeriodSeconds(Pod({{"terminationGracePeriodSeconds", 0}})), 0);
  EXPECT_EQ(RestartPolicy(Pod()), "Always");
  EXPECT_EQ(RestartPolicy(Pod({{"restartPolicy", "Never"}})), "Never");
}

}  // namespace
}  // namespace kin
