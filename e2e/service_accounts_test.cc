// e2e: ServiceAccounts and their tokens with the real kubectl 1.33 against
// a cluster made by `kin cluster create`: a new namespace gets `default`
// and kube-root-ca.crt; `kubectl create token` gives a token the API
// accepts as system:serviceaccount:<ns>:default (`kubectl auth whoami`);
// a token for another audience, one whose service account was deleted and
// one whose bound Secret was deleted are refused (401); TokenReview. A pod
// gets the kube-api-access projected volume at admission, its token file
// authenticates, and it is rotated (the suite's cluster refreshes volumes
// every second and rotates tokens older than 3 s).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <optional>
#include <regex>
#include <set>

#include "base/process.h"
#include "base/strings.h"
#include "base/yaml.h"
#include "testing/e2e_support.h"
#include "testing/kernel_fixture.h"

namespace kin {
namespace {

using testing::Eventually;
using testing::KinBinary;
using testing::TempDir;

class ServiceAccountsE2E : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    config_dir_ = new TempDir();
    testing::WriteFile(config_dir_->File("c.yaml"),
                       "apiVersion: kin.dev/v1alpha1\nkind: Cluster\n"
                       "kubelet:\n  syncFrequency: 1s\n  tokenMaxAge: 3s\n");
    cluster_ = new testing::SuiteCluster('s', {"--config", config_dir_->File("c.yaml")});
  }
  static void TearDownTestSuite() {
    delete cluster_;
    delete config_dir_;
  }
  void SetUp() override {
    ASSERT_TRUE(cluster_->error().empty()) << cluster_->error();
    k_ = std::make_unique<testing::KubectlRunner>("1.33", cluster_->Kubeconfig());
    if (!k_->installed()) {
      if (std::getenv("CI")) FAIL() << k_->binary() << " is missing";
      GTEST_SKIP() << k_->binary() << " is not installed";
    }
    static int tests_run = 0;
    ns_ = "sa-e2e-" + std::to_string(++tests_run);
    Ok({"create", "namespace", ns_});
  }
  void TearDown() override {
    if (!ns_.empty()) Kubectl({"delete", "namespace", ns_, "--wait=false"});
  }
  CommandResult Kubectl(std::vector<std::string> args, const std::string& input = "") {
    return k_->Run(args, input);
  }
  // kubectl as the bearer of `token` only: no client certificate.
  CommandResult WithToken(const std::string& token, std::vector<std::string> args) {
    return k_->RunWithToken(token, args);
  }
  std::string Ok(std::vector<std::string> args, const std::string& input = "") {
    return k_->Ok(args, input);
  }
  std::string Token(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"create", "token", "default", "-n", ns_};
    args.insert(args.end(), extra.begin(), extra.end());
    std::string t = Ok(args);
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
    return t;
  }
  bool HasDefaultServiceAccount() {
    return Kubectl({"get", "serviceaccount", "default", "-n", ns_}).status.success();
  }

  static TempDir* config_dir_;
  static testing::SuiteCluster* cluster_;
  std::unique_ptr<testing::KubectlRunner> k_;
  std::string ns_;
};

TempDir* ServiceAccountsE2E::config_dir_ = nullptr;
testing::SuiteCluster* ServiceAccountsE2E::cluster_ = nullptr;

TEST_F(ServiceAccountsE2E, NewNamespaceGetsDefaultServiceAccountAndRootCa) {
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(Eventually([&] { return HasDefaultServiceAccount(); }, std::chrono::seconds(20)));
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  std::cout << "default ServiceAccount present " << took.count()
            << " ms after kubectl create namespace returned\n";
  std::string ca;
  ASSERT_TRUE(Eventually(
      [&] {
        CommandResult r = Kubectl(
            {"get", "configmap", "kube-root-ca.crt", "-n", ns_, "-o", "jsonpath={.data.ca\\.crt}"});
        ca = r.out;
        return r.status.success() && !ca.empty();
      },
      std::chrono::seconds(20)));
  EXPECT_EQ(ca, k_->ca_pem());
  // Deleted: made again, with another uid.
  std::string uid = Ok({"get", "sa", "default", "-n", ns_, "-o", "jsonpath={.metadata.uid}"});
  Ok({"delete", "sa", "default", "-n", ns_});
  EXPECT_TRUE(Eventually(
      [&] {
        CommandResult r =
            Kubectl({"get", "sa", "default", "-n", ns_, "-o", "jsonpath={.metadata.uid}"});
        return r.status.success() && !r.out.empty() && r.out != uid;
      },
      std::chrono::seconds(20)));
}

TEST_F(ServiceAccountsE2E, CreatedTokenIsTheServiceAccountUntilItIsDeleted) {
  ASSERT_TRUE(Eventually([&] { return HasDefaultServiceAccount(); }, std::chrono::seconds(20)));
  std::string token = Token({"--duration", "10m"});
  ASSERT_EQ(std::count(token.begin(), token.end(), '.'), 2) << token;

  CommandResult api = WithToken(token, {"get", "--raw", "/api"});
  ASSERT_TRUE(api.status.success()) << api.out << api.err;
  EXPECT_NE(api.out.find("APIVersions"), std::string::npos) << api.out;

  CommandResult who = WithToken(token, {"auth", "whoami", "-o", "json"});
  ASSERT_TRUE(who.status.success()) << who.out << who.err;
  Json review = Json::parse(who.out);
  EXPECT_EQ(review["status"]["userInfo"]["username"], "system:serviceaccount:" + ns_ + ":default");
  std::string sa_uid = Ok({"get", "sa", "default", "-n", ns_, "-o", "jsonpath={.metadata.uid}"});
  EXPECT_EQ(review["status"]["userInfo"]["uid"], sa_uid);
  // The admin's client certificate.
  Json admin = Json::parse(Ok({"auth", "whoami", "-o", "json"}));
  EXPECT_EQ(admin["kind"], "SelfSubjectReview");
  EXPECT_FALSE(admin["status"]["userInfo"].value("username", "").empty());

  // The service account goes (and the controller makes another `default`):
  // its tokens are refused.
  Ok({"delete", "sa", "default", "-n", ns_});
  EXPECT_TRUE(Eventually([&] {
    CommandResult r = WithToken(token, {"get", "--raw", "/api"});
    return !r.status.success() && r.err.find("Unauthorized") != std::string::npos;
  }));
}

TEST_F(ServiceAccountsE2E, TokenForAnotherAudienceIsRefusedButReviewable) {
  ASSERT_TRUE(Eventually([&] { return HasDefaultServiceAccount(); }, std::chrono::seconds(20)));
  std::string vault = Token({"--audience", "vault"});
  CommandResult api = WithToken(vault, {"get", "--raw", "/api"});
  EXPECT_FALSE(api.status.success());
  EXPECT_NE(api.err.find("Unauthorized"), std::string::npos) << api.err;

  auto review = [&](const std::string& token, const std::string& audiences) {
    std::string yaml =
        "apiVersion: authentication.k8s.io/v1\nkind: TokenReview\nspec:\n  token: " + token + "\n" +
        audiences;
    // --validate=false: kubectl validates a kind without a PATCH operation
    // only after listing CRDs, which kin does not serve yet.
    return Json::parse(Ok({"create", "--validate=false", "-f", "-", "-o", "json"}, yaml));
  };
  Json ok = review(vault, "  audiences: [vault]\n");
  EXPECT_EQ(ok["status"].value("authenticated", false), true) << ok.dump();
  EXPECT_EQ(ok["status"]["user"]["username"], "system:serviceaccount:" + ns_ + ":default");
  EXPECT_EQ(ok["status"]["audiences"], Json::array({"vault"}));
  Json refused = review(vault, "");
  EXPECT_FALSE(refused["status"].value("authenticated", false)) << refused.dump();
  EXPECT_NE(refused["status"].value("error", "").find("is invalid for the target audiences"),
            std::string::npos)
      << refused.dump();
}

TEST_F(ServiceAccountsE2E, TokenRequestErrorsAndBoundSecret) {
  ASSERT_TRUE(Eventually([&] { return HasDefaultServiceAccount(); }, std::chrono::seconds(20)));
  CommandResult shortlived = Kubectl({"create", "token", "default", "-n", ns_, "--duration", "1m"});
  EXPECT_FALSE(shortlived.status.success());
  EXPECT_NE(shortlived.err.find("spec.expirationSeconds"), std::string::npos) << shortlived.err;
  EXPECT_NE(shortlived.err.find("may not specify a duration less than 10 minutes"),
            std::string::npos)
      << shortlived.err;
  CommandResult nobody = Kubectl({"create", "token", "nobody", "-n", ns_});
  EXPECT_FALSE(nobody.status.success());
  EXPECT_NE(nobody.err.find("serviceaccounts \"nobody\" not found"), std::string::npos)
      << nobody.err;

  Ok({"create", "secret", "generic", "anchor", "-n", ns_, "--from-literal=a=b"});
  std::string bound = Token({"--bound-object-kind", "Secret", "--bound-object-name", "anchor"});
  CommandResult api = WithToken(bound, {"get", "--raw", "/api"});
  ASSERT_TRUE(api.status.success()) << api.err;
  Ok({"delete", "secret", "anchor", "-n", ns_});
  api = WithToken(bound, {"get", "--raw", "/api"});
  EXPECT_FALSE(api.status.success());
  EXPECT_NE(api.err.find("Unauthorized"), std::string::npos) << api.err;
}

// The ServiceAccount admission plugin: a pod naming a ServiceAccount that
// does not exist is refused with kube-apiserver's 403; one naming none gets
// `default`, which a pod made right after its namespace finds too (the
// admission waits for the controller to make it, as upstream retries).
TEST_F(ServiceAccountsE2E, PodNamingAMissingServiceAccountIsForbidden) {
  const std::string pod = R"(apiVersion: v1
kind: Pod
metadata: {name: NAME}
spec:
  SA
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
)";
  auto manifest = [&](const std::string& name, const std::string& sa) {
    std::string m = pod;
    m.replace(m.find("NAME"), 4, name);
    m.replace(m.find("SA"), 2, sa.empty() ? "" : "serviceAccountName: " + sa);
    return m;
  };
  CommandResult r = Kubectl({"apply", "-n", ns_, "-f", "-"}, manifest("lost", "nosuch"));
  EXPECT_FALSE(r.status.success());
  EXPECT_NE(r.err.find("pods \"lost\" is forbidden: error looking up service account " + ns_ +
                       "/nosuch: serviceaccount \"nosuch\" not found"),
            std::string::npos)
      << r.err;
  Ok({"create", "serviceaccount", "nosuch", "-n", ns_});
  Ok({"apply", "-n", ns_, "-f", "-"}, manifest("found", "nosuch"));
  // A fresh namespace: the pod is admitted without waiting by the client.
  const std::string fresh = ns_ + "-fresh";
  Ok({"create", "namespace", fresh});
  r = Kubectl({"apply", "-n", fresh, "-f", "-"}, manifest("early", ""));
  EXPECT_TRUE(r.status.success()) << r.err;
  EXPECT_EQ(Ok({"get", "pod", "early", "-n", fresh, "-o", "jsonpath={.spec.serviceAccountName}"}),
            "default");
  Kubectl({"delete", "namespace", fresh, "--wait=false"});
}

// The ServiceAccount admission's kube-api-access volume, as kube-apiserver
// adds it, served by the node agent: the token file authenticates as the
// pod's service account bound to the pod, and is rotated (the suite's
// tokenMaxAge is 3 s), the new token valid too. automountServiceAccountToken
// false, on the pod or its ServiceAccount, gets no volume and no files.
TEST_F(ServiceAccountsE2E, PodGetsTheKubeApiAccessVolumeAndARotatedToken) {
  ASSERT_TRUE(Eventually([&] { return HasDefaultServiceAccount(); }, std::chrono::seconds(20)));
  const std::string sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount";
  Ok({"create", "serviceaccount", "quiet", "-n", ns_});
  Ok({"patch", "serviceaccount", "quiet", "-n", ns_, "-p",
      R"({"automountServiceAccountToken":false})"});
  Ok({"apply", "-n", ns_, "-f", "-"}, R"(apiVersion: v1
kind: Pod
metadata: {name: api}
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: init
    image: busybox
    command: [cat, /var/run/secrets/kubernetes.io/serviceaccount/namespace]
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: nomount}
spec:
  terminationGracePeriodSeconds: 1
  automountServiceAccountToken: false
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: quiet}
spec:
  terminationGracePeriodSeconds: 1
  serviceAccountName: quiet
  containers: [{name: c, image: busybox, command: [sleep, "3600"]}]
)");

  // The spec as kube-apiserver's admission leaves it.
  Json pod = Json::parse(Ok({"get", "pod", "api", "-n", ns_, "-o", "json"}));
  const Json& volumes = pod["spec"]["volumes"];
  ASSERT_EQ(volumes.size(), 1u) << pod["spec"].dump();
  const std::string volume = volumes[0].value("name", "");
  EXPECT_TRUE(
      std::regex_match(volume, std::regex("kube-api-access-[bcdfghjklmnpqrstvwxz2456789]{5}")))
      << volume;
  EXPECT_EQ(volumes[0]["projected"], Json::parse(R"({"defaultMode":420,"sources":[
      {"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}},
      {"configMap":{"name":"kube-root-ca.crt","items":[{"key":"ca.crt","path":"ca.crt"}]}},
      {"downwardAPI":{"items":[{"path":"namespace",
        "fieldRef":{"apiVersion":"v1","fieldPath":"metadata.namespace"}}]}}]})"));
  const Json mount = {{"name", volume}, {"readOnly", true}, {"mountPath", sa_dir}};
  EXPECT_EQ(pod["spec"]["containers"][0]["volumeMounts"], Json::array({mount}));
  EXPECT_EQ(pod["spec"]["initContainers"][0]["volumeMounts"], Json::array({mount}));
  EXPECT_EQ(pod["spec"]["serviceAccountName"], "default");
  for (const char* name : {"nomount", "quiet"}) {
    Json other = Json::parse(Ok({"get", "pod", name, "-n", ns_, "-o", "json"}));
    EXPECT_FALSE(other["spec"].contains("volumes")) << name << ": " << other["spec"].dump();
    EXPECT_FALSE(other["spec"]["containers"][0].contains("volumeMounts")) << name;
  }

  for (const char* name : {"api", "nomount", "quiet"}) {
    Ok({"wait", "--for=condition=Ready", std::string("pod/") + name, "-n", ns_, "--timeout=60s"});
  }
  // The init container read the namespace file through the volume.
  std::string logged = Ok({"logs", "api", "-c", "init", "-n", ns_});
  while (!logged.empty() && logged.back() == '\n') logged.pop_back();
  EXPECT_EQ(logged, ns_);
  EXPECT_EQ(Ok({"exec", "api", "-n", ns_, "--", "cat", sa_dir + "/namespace"}), ns_);
  EXPECT_EQ(Ok({"exec", "api", "-n", ns_, "--", "cat", sa_dir + "/ca.crt"}), k_->ca_pem());
  // Written the AtomicWriter way: token -> ..data/token.
  EXPECT_EQ(Ok({"exec", "api", "-n", ns_, "--", "readlink", sa_dir + "/token"}), "..data/token\n");
  for (const char* name : {"nomount", "quiet"}) {
    CommandResult r = Kubectl({"exec", name, "-n", ns_, "--", "ls", sa_dir});
    EXPECT_FALSE(r.status.success()) << name << ": " << r.out;
  }

  auto read_token = [&] {
    CommandResult r = Kubectl({"exec", "api", "-n", ns_, "--", "cat", sa_dir + "/token"});
    return r.status.success() ? r.out : std::string();
  };
  auto whoami = [&](const std::string& token) {
    CommandResult who = WithToken(token, {"auth", "whoami", "-o", "json"});
    EXPECT_TRUE(who.status.success()) << who.out << who.err;
    return who.status.success() ? Json::parse(who.out) : Json::object();
  };
  const std::string first = read_token();
  ASSERT_EQ(std::count(first.begin(), first.end(), '.'), 2) << first;
  // The volume's 3607 s token, extended as kube-apiserver extends it: valid
  // a year, kubernetes.io.warnafter at the requested expiry.
  {
    std::string payload = first.substr(first.find('.') + 1);
    payload = payload.substr(0, payload.find('.'));
    for (auto& ch : payload) ch = ch == '-' ? '+' : ch == '_' ? '/' : ch;
    while (payload.size() % 4) payload += '=';
    std::optional<std::string> decoded = Base64Decode(payload);
    ASSERT_TRUE(decoded) << first;
    Json claims = Json::parse(*decoded);
    const int64_t iat = claims.value("iat", int64_t{0});
    EXPECT_EQ(claims.value("exp", int64_t{0}) - iat, 365 * 24 * 3600) << claims.dump();
    EXPECT_EQ(claims["kubernetes.io"].value("warnafter", int64_t{0}) - iat, 3607)
        << claims.dump();
  }
  Json user = whoami(first)["status"]["userInfo"];
  EXPECT_EQ(user["username"], "system:serviceaccount:" + ns_ + ":default") << user.dump();
  EXPECT_EQ(user["extra"]["authentication.kubernetes.io/pod-name"], Json::array({"api"}))
      << user.dump();
  EXPECT_EQ(user["extra"]["authentication.kubernetes.io/pod-uid"],
            Json::array({pod["metadata"]["uid"]}))
      << user.dump();

  // Rotated: another token in the file, which the API accepts too.
  std::string second;
  ASSERT_TRUE(Eventually(
      [&] {
        second = read_token();
        return !second.empty() && second != first;
      },
      std::chrono::seconds(30)))
      << "the token was not rotated";
  user = whoami(second)["status"]["userInfo"];
  EXPECT_EQ(user["username"], "system:serviceaccount:" + ns_ + ":default") << user.dump();

  // Bound to the pod: refused once the pod is gone.
  Ok({"delete", "pod", "api", "-n", ns_, "--wait=true", "--timeout=60s"});
  EXPECT_TRUE(Eventually([&] {
    CommandResult r = WithToken(second, {"get", "--raw", "/api"});
    return !r.status.success() && r.err.find("Unauthorized") != std::string::npos;
  }));
}

// Upstream's "should support InClusterConfig with token rotation": agnhost
// inclusterclient logs a hash of each Authorization header it sends; with
// the suite's tokenMaxAge of 3 s the token (and so the hash) changes, and
// every call with it succeeds.
TEST_F(ServiceAccountsE2E, InClusterClientSeesTheTokenRotate) {
  ASSERT_TRUE(Eventually([&] { return HasDefaultServiceAccount(); }, std::chrono::seconds(20)));
  Ok({"apply", "-n", ns_, "-f", "-"}, R"(apiVersion: v1
kind: Pod
metadata: {name: inclusterclient}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: c
    image: registry.k8s.io/e2e-test-images/agnhost:2.52
    args: [inclusterclient, --poll-interval=1]
)");
  std::string logs;
  std::set<std::string> hashes;
  EXPECT_TRUE(Eventually(
      [&] {
        logs = Kubectl({"logs", "inclusterclient", "-n", ns_}).out;
        static const std::regex kHash("authz_header=([A-Za-z0-9_-]{43})");
        for (auto it = std::sregex_iterator(logs.begin(), logs.end(), kHash);
             it != std::sregex_iterator(); ++it) {
          hashes.insert((*it)[1]);
        }
        return hashes.size() >= 2;
      },
      std::chrono::seconds(40)))
      << logs;
  EXPECT_EQ(logs.find("status=failed"), std::string::npos) << logs;
}

}  // namespace
}  // namespace kin
