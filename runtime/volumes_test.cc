#include "runtime/volumes.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "base/error.h"
#include "base/strings.h"

namespace kin {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

std::string LinkOf(const std::string& path) {
  std::error_code ec;
  return fs::read_symlink(path, ec).string();
}

class VolumesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string templ = (fs::temp_directory_path() / "kin-volumes-XXXXXX").string();
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    tmp_ = templ;
    pod_dir_ = tmp_ + "/pod";
    ctx_.lookup = [this](const std::string& kind, const std::string& ns,
                         const std::string& name) -> std::optional<Json> {
      auto it = objects_.find(kind + "/" + ns + "/" + name);
      if (it == objects_.end()) return std::nullopt;
      return it->second;
    };
    ctx_.pod_ip = "10.244.1.5";
    ctx_.host_ip = "172.18.0.2";
    ctx_.node_name = "worker-1";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }

  void PutConfigMap(const std::string& name, Json data, Json binary = nullptr) {
    Json cm = {{"kind", "ConfigMap"}, {"metadata", {{"name", name}, {"namespace", "ns1"}}}};
    cm["data"] = std::move(data);
    if (!binary.is_null()) cm["binaryData"] = std::move(binary);
    objects_["ConfigMap/ns1/" + name] = cm;
  }
  void PutSecret(const std::string& name, const std::map<std::string, std::string>& plain) {
    Json data = Json::object();
    for (const auto& [k, v] : plain) data[k] = Base64Encode(v);
    objects_["Secret/ns1/" + name] = {
        {"kind", "Secret"}, {"metadata", {{"name", name}, {"namespace", "ns1"}}}, {"data", data}};
  }

  Json Pod(Json volumes, Json containers = nullptr) {
    if (containers.is_null()) {
      containers = Json::array({{{"name", "app"}, {"image", "agnhost"}}});
    }
    return {{"metadata",
             {{"name", "web-0"},
              {"namespace", "ns1"},
              {"uid", "u-123"},
              {"labels", {{"app", "web"}, {"tier", "front\"end"}}},
              {"annotations", {{"b", "2"}, {"a", "x\ny"}}}}},
            {"spec", {{"volumes", volumes}, {"containers", containers}}}};
  }

  std::string VolDir(const std::string& name) { return pod_dir_ + "/volumes/" + name; }

  std::string tmp_, pod_dir_;
  VolumeContext ctx_;
  std::map<std::string, Json> objects_;
};

Code CodeOf(const std::function<void()>& f, std::string* message = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (message) *message = e.message();
    return e.code();
  }
  ADD_FAILURE() << "no error thrown";
  return Code::kInternal;
}

TEST_F(VolumesTest, EmptyDirIsWorldWritableDirectory) {
  ::umask(022);
  auto pv = PodVolumes::Setup(
      Pod(Json::array({{{"name", "scratch"}, {"emptyDir", Json::object()}}})), pod_dir_, ctx_);
  EXPECT_EQ(pv.HostPath("scratch"), VolDir("scratch"));
  EXPECT_TRUE(fs::is_directory(VolDir("scratch")));
  EXPECT_EQ(ModeOf(VolDir("scratch")), 0777u);
}

TEST_F(VolumesTest, SetupAgainKeepsEmptyDirContents) {
  Json pod = Pod(Json::array({{{"name", "scratch"}, {"emptyDir", Json::object()}}}));
  PodVolumes::Setup(pod, pod_dir_, ctx_);
  std::ofstream(VolDir("scratch") + "/f") << "kept";
  PodVolumes::Setup(pod, pod_dir_, ctx_);
  EXPECT_EQ(ReadAll(VolDir("scratch") + "/f"), "kept");
}

TEST_F(VolumesTest, UnsupportedEmptyDirMediumIsInvalid) {
  std::string msg;
  EXPECT_EQ(CodeOf(
                [&] {
                  PodVolumes::Setup(
                      Pod(Json::array({{{"name", "h"}, {"emptyDir", {{"medium", "HugePages"}}}}})),
                      pod_dir_, ctx_);
                },
                &msg),
            Code::kInvalid);
  EXPECT_NE(msg.find("spec.volumes[0].emptyDir.medium"), std::string::npos) << msg;
}

TEST_F(VolumesTest, ConfigMapAllKeysAtomicLayout) {
  PutConfigMap("cfg", {{"a.conf", "alpha"}, {"b", "beta"}},
               {{"bin", Base64Encode(std::string("\x00\x01", 2))}});
  auto pv = PodVolumes::Setup(Pod(Json::array({{{"name", "c"}, {"configMap", {{"name", "cfg"}}}}})),
                              pod_dir_, ctx_);
  const std::string dir = VolDir("c");
  EXPECT_EQ(ReadAll(dir + "/a.conf"), "alpha");
  EXPECT_EQ(ReadAll(dir + "/b"), "beta");
  EXPECT_EQ(ReadAll(dir + "/bin"), std::string("\x00\x01", 2));
  EXPECT_EQ(ModeOf(dir + "/a.conf"), 0644u);
  // ..data -> ..<timestamp>, and every key is a link through ..data.
  std::string ts = LinkOf(dir + "/..data");
  ASSERT_EQ(ts.rfind("..", 0), 0u) << ts;
  EXPECT_NE(ts, "..data");
  EXPECT_TRUE(fs::is_directory(dir + "/" + ts));
  EXPECT_EQ(LinkOf(dir + "/a.conf"), "..data/a.conf");
  EXPECT_EQ(LinkOf(dir + "/b"), "..data/b");
  EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(dir + "/" + ts + "/a.conf")));
}

TEST_F(VolumesTest, ConfigMapItemsAndModes) {
  PutConfigMap("cfg", {{"a", "alpha"}, {"b", "beta"}, {"c", "gamma"}});
  Json vol = {{"name", "c"},
              {"configMap",
               {{"name", "cfg"},
                {"defaultMode", 0600},
                {"items", Json::array({{{"key", "a"}, {"path", "dir/x.txt"}, {"mode", 0400}},
                                       {{"key", "b"}, {"path", "y"}}})}}}};
  PodVolumes::Setup(Pod(Json::array({vol})), pod_dir_, ctx_);
  const std::string dir = VolDir("c");
  EXPECT_EQ(ReadAll(dir + "/dir/x.txt"), "alpha");
  EXPECT_EQ(ModeOf(dir + "/dir/x.txt"), 0400u);
  EXPECT_EQ(ReadAll(dir + "/y"), "beta");
  EXPECT_EQ(ModeOf(dir + "/y"), 0600u);
  EXPECT_FALSE(fs::exists(dir + "/c"));
  EXPECT_FALSE(fs::exists(dir + "/a"));
  EXPECT_EQ(LinkOf(dir + "/dir"), "..data/dir");
}

TEST_F(VolumesTest, MissingConfigMapIsNotFoundUnlessOptional) {
  std::string msg;
  EXPECT_EQ(CodeOf(
                [&] {
                  PodVolumes::Setup(
                      Pod(Json::array({{{"name", "c"}, {"configMap", {{"name", "cfg"}}}}})),
                      pod_dir_, ctx_);
                },
                &msg),
            Code::kNotFound);
  EXPECT_EQ(msg, "configmap \"cfg\" not found");

  PodVolumes::Setup(
      Pod(Json::array({{{"name", "c"}, {"configMap", {{"name", "cfg"}, {"optional", true}}}}})),
      pod_dir_, ctx_);
  EXPECT_TRUE(fs::is_directory(VolDir("c")));
  for (const auto& e : fs::directory_iterator(VolDir("c"))) {
    EXPECT_EQ(e.path().filename().string().rfind("..", 0), 0u) << e.path();
  }
}

TEST_F(VolumesTest, MissingKeyInItems) {
  PutConfigMap("cfg", {{"a", "alpha"}});
  auto vol = [](bool optional) {
    return Json{
        {"name", "c"},
        {"configMap",
         {{"name", "cfg"},
          {"optional", optional},
          {"items", Json::array({{{"key", "k"}, {"path", "k"}}, {{"key", "a"}, {"path", "a"}}})}}}};
  };
  std::string msg;
  EXPECT_EQ(
      CodeOf([&] { PodVolumes::Setup(Pod(Json::array({vol(false)})), pod_dir_, ctx_); }, &msg),
      Code::kNotFound);
  EXPECT_EQ(msg, "configmap references non-existent config key: k");
  PodVolumes::Setup(Pod(Json::array({vol(true)})), pod_dir_, ctx_);
  EXPECT_EQ(ReadAll(VolDir("c") + "/a"), "alpha");
  EXPECT_FALSE(fs::exists(VolDir("c") + "/k"));
}

TEST_F(VolumesTest, SecretIsDecodedWithModes) {
  PutSecret("s", {{"password", "hunter2"}, {"user", "admin"}});
  Json vol = {{"name", "sec"},
              {"secret",
               {{"secretName", "s"},
                {"items", Json::array({{{"key", "password"}, {"path", "pw"}, {"mode", 0400}}})}}}};
  auto pv = PodVolumes::Setup(
      Pod(Json::array({vol, {{"name", "all"}, {"secret", {{"secretName", "s"}}}}})), pod_dir_,
      ctx_);
  EXPECT_EQ(ReadAll(VolDir("sec") + "/pw"), "hunter2");
  EXPECT_EQ(ModeOf(VolDir("sec") + "/pw"), 0400u);
  EXPECT_EQ(ReadAll(VolDir("all") + "/user"), "admin");
  EXPECT_EQ(ModeOf(VolDir("all") + "/user"), 0644u);

  std::string msg;
  EXPECT_EQ(CodeOf(
                [&] {
                  PodVolumes::Setup(
                      Pod(Json::array({{{"name", "x"}, {"secret", {{"secretName", "nope"}}}}})),
                      pod_dir_, ctx_);
                },
                &msg),
            Code::kNotFound);
  EXPECT_EQ(msg, "secret \"nope\" not found");
}

TEST_F(VolumesTest, DownwardApiFieldsAndResources) {
  Json containers = Json::array(
      {{{"name", "app"},
        {"resources",
         {{"limits", {{"cpu", "250m"}, {"memory", "64Mi"}}}, {"requests", {{"cpu", "100m"}}}}}},
       {{"name", "side"}}});
  Json items = Json::array({
      {{"path", "name"}, {"fieldRef", {{"fieldPath", "metadata.name"}}}},
      {{"path", "ns"}, {"fieldRef", {{"fieldPath", "metadata.namespace"}}}, {"mode", 0600}},
      {{"path", "uid"}, {"fieldRef", {{"fieldPath", "metadata.uid"}}}},
      {{"path", "labels"}, {"fieldRef", {{"fieldPath", "metadata.labels"}}}},
      {{"path", "annotations"}, {"fieldRef", {{"fieldPath", "metadata.annotations"}}}},
      {{"path", "cpu_limit"},
       {"resourceFieldRef", {{"containerName", "app"}, {"resource", "limits.cpu"}}}},
      {{"path", "cpu_limit_m"},
       {"resourceFieldRef",
        {{"containerName", "app"}, {"resource", "limits.cpu"}, {"divisor", "1m"}}}},
      {{"path", "mem_limit_mi"},
       {"resourceFieldRef",
        {{"containerName", "app"}, {"resource", "limits.memory"}, {"divisor", "1Mi"}}}},
      {{"path", "cpu_request_m"},
       {"resourceFieldRef",
        {{"containerName", "app"}, {"resource", "requests.cpu"}, {"divisor", "1m"}}}},
      {{"path", "side_mem"},
       {"resourceFieldRef", {{"containerName", "side"}, {"resource", "limits.memory"}}}},
  });
  PodVolumes::Setup(
      Pod(Json::array({{{"name", "info"}, {"downwardAPI", {{"items", items}}}}}), containers),
      pod_dir_, ctx_);
  const std::string dir = VolDir("info");
  EXPECT_EQ(ReadAll(dir + "/name"), "web-0");
  EXPECT_EQ(ReadAll(dir + "/ns"), "ns1");
  EXPECT_EQ(ModeOf(dir + "/ns"), 0600u);
  EXPECT_EQ(ModeOf(dir + "/name"), 0644u);
  EXPECT_EQ(ReadAll(dir + "/uid"), "u-123");
  EXPECT_EQ(ReadAll(dir + "/labels"), "app=\"web\"\ntier=\"front\\\"end\"");
  EXPECT_EQ(ReadAll(dir + "/annotations"), "a=\"x\\ny\"\nb=\"2\"");
  EXPECT_EQ(ReadAll(dir + "/cpu_limit"), "1");  // 250m rounded up to whole cores
  EXPECT_EQ(ReadAll(dir + "/cpu_limit_m"), "250");
  EXPECT_EQ(ReadAll(dir + "/mem_limit_mi"), "64");
  EXPECT_EQ(ReadAll(dir + "/cpu_request_m"), "100");
  EXPECT_EQ(ReadAll(dir + "/side_mem"), "0");  // no limit, no node info

  ctx_.node_allocatable = {{"memory", "2Gi"}};
  Payload p = DownwardApiPayload({{"items", Json::array({items[9]})}},
                                 Pod(Json::array(), containers), ctx_, 0644);
  EXPECT_EQ(p["side_mem"].data, std::to_string(2LL << 30));
}

TEST_F(VolumesTest, ProjectedServiceAccountTokenIsTheAgentsToken) {
  int asked = 0;
  ctx_.service_account_token = [&asked](const Json& pod, const Json& source) {
    return "token-" + std::to_string(++asked) + "-for-" + pod["metadata"].value("name", "") + "-" +
           source.value("audience", "") + "-" +
           std::to_string(source.value("expirationSeconds", 0));
  };
  Json projected = {
      {"sources",
       Json::array({{{"serviceAccountToken",
                      {{"path", "t"}, {"audience", "vault"}, {"expirationSeconds", 700}}}}})}};
  Json pod = Pod(Json::array({{{"name", "sa"}, {"projected", projected}}}));
  PodVolumes pv = PodVolumes::Setup(pod, pod_dir_, ctx_);
  const std::string name = pod["metadata"].value("name", "");
  EXPECT_EQ(ReadAll(VolDir("sa") + "/t"), "token-1-for-" + name + "-vault-700");
  // A refresh writes what the agent's token manager answers now (a
  // rotated token), through the ..data swap.
  EXPECT_TRUE(pv.Refresh(pod, ctx_));
  EXPECT_EQ(ReadAll(VolDir("sa") + "/t"), "token-2-for-" + name + "-vault-700");
  EXPECT_EQ(fs::read_symlink(VolDir("sa") + "/t"), "..data/t");
}

TEST_F(VolumesTest, ProjectedCombinesSources) {
  PutConfigMap("kube-root-ca.crt", {{"ca.crt", "CERT"}});
  PutSecret("s", {{"k", "v"}});
  Json projected = {
      {"defaultMode", 0440},
      {"sources",
       Json::array({
           {{"serviceAccountToken", {{"path", "token"}, {"expirationSeconds", 3607}}}},
           {{"configMap",
             {{"name", "kube-root-ca.crt"},
              {"items", Json::array({{{"key", "ca.crt"}, {"path", "ca.crt"}}})}}}},
           {{"downwardAPI",
             {{"items", Json::array({{{"path", "namespace"},
                                      {"fieldRef", {{"fieldPath", "metadata.namespace"}}}}})}}}},
           {{"secret",
             {{"name", "s"},
              {"items", Json::array({{{"key", "k"}, {"path", "sec/k"}, {"mode", 0400}}})}}}},
       })}};
  PodVolumes::Setup(Pod(Json::array({{{"name", "kube-api-access"}, {"projected", projected}}})),
                    pod_dir_, ctx_);
  const std::string dir = VolDir("kube-api-access");
  EXPECT_EQ(ReadAll(dir + "/token"), "kin-placeholder-token");
  EXPECT_EQ(ReadAll(dir + "/ca.crt"), "CERT");
  EXPECT_EQ(ReadAll(dir + "/namespace"), "ns1");
  EXPECT_EQ(ReadAll(dir + "/sec/k"), "v");
  EXPECT_EQ(ModeOf(dir + "/ca.crt"), 0440u);
  EXPECT_EQ(ModeOf(dir + "/sec/k"), 0400u);
  EXPECT_EQ(LinkOf(dir + "/token"), "..data/token");
  // One atomic dir for all of them.
  std::string ts = LinkOf(dir + "/..data");
  EXPECT_TRUE(fs::exists(dir + "/" + ts + "/token"));
  EXPECT_TRUE(fs::exists(dir + "/" + ts + "/sec/k"));

  objects_.erase("ConfigMap/ns1/kube-root-ca.crt");
  std::string msg;
  EXPECT_EQ(CodeOf(
                [&] {
                  PodVolumes::Setup(
                      Pod(Json::array({{{"name", "kube-api-access"}, {"projected", projected}}})),
                      tmp_ + "/pod2", ctx_);
                },
                &msg),
            Code::kNotFound);
  EXPECT_EQ(msg, "configmap \"kube-root-ca.crt\" not found");
}

TEST_F(VolumesTest, RefreshSwapsAtomically) {
  PutConfigMap("cfg", {{"a", "one"}, {"gone", "soon"}});
  Json pod = Pod(Json::array(
      {{{"name", "c"}, {"configMap", {{"name", "cfg"}}}},
       {{"name", "info"},
        {"downwardAPI",
         {{"items", Json::array({{{"path", "labels"},
                                  {"fieldRef", {{"fieldPath", "metadata.labels"}}}}})}}}}}));
  auto pv = PodVolumes::Setup(pod, pod_dir_, ctx_);
  const std::string dir = VolDir("c");
  const std::string old_ts = LinkOf(dir + "/..data");

  EXPECT_FALSE(pv.Refresh(pod, ctx_));  // nothing changed: nothing rewritten
  EXPECT_EQ(LinkOf(dir + "/..data"), old_ts);

  PutConfigMap("cfg", {{"a", "two"}, {"new", "n"}});
  EXPECT_TRUE(pv.Refresh(pod, ctx_));
  const std::string new_ts = LinkOf(dir + "/..data");
  EXPECT_NE(new_ts, old_ts);
  EXPECT_FALSE(fs::exists(dir + "/" + old_ts));
  EXPECT_EQ(ReadAll(dir + "/a"), "two");
  EXPECT_EQ(ReadAll(dir + "/new"), "n");
  EXPECT_FALSE(fs::exists(fs::symlink_status(dir + "/gone")));

  pod["metadata"]["labels"]["app"] = "api";
  EXPECT_TRUE(pv.Refresh(pod, ctx_));
  EXPECT_EQ(ReadAll(VolDir("info") + "/labels"), "app=\"api\"\ntier=\"front\\\"end\"");

  // A vanished (non-optional) ConfigMap keeps the old files and reports.
  objects_.erase("ConfigMap/ns1/cfg");
  EXPECT_EQ(CodeOf([&] { pv.Refresh(pod, ctx_); }), Code::kNotFound);
  EXPECT_EQ(ReadAll(dir + "/a"), "two");
}

TEST_F(VolumesTest, WriteAtomicPayloadRejectsBadPaths) {
  for (std::string p : {"/abs", "../up", "a/../b", "..hidden"}) {
    EXPECT_EQ(CodeOf([&] {
                WriteAtomicPayload(tmp_ + "/w", {{p, {"x", 0644}}});
              }),
              Code::kInvalid)
        << p;
  }
  EXPECT_TRUE(WriteAtomicPayload(tmp_ + "/w", {{"ok", {"x", 0644}}}));
  EXPECT_TRUE(WriteAtomicPayload(tmp_ + "/w", {{"ok", {"x", 0600}}}));  // a mode change counts
  EXPECT_EQ(ModeOf(tmp_ + "/w/ok"), 0600u);
  EXPECT_FALSE(WriteAtomicPayload(tmp_ + "/w", {{"ok", {"x", 0600}}}));
}

TEST_F(VolumesTest, HostPathTypes) {
  const std::string d = tmp_ + "/host";
  auto setup = [&](const std::string& path, const std::string& type) {
    Json hp = {{"path", path}};
    if (!type.empty()) hp["type"] = type;
    return PodVolumes::Setup(Pod(Json::array({{{"name", "h"}, {"hostPath", hp}}})), pod_dir_, ctx_);
  };
  ::umask(022);
  auto pv = setup(d + "/made", "DirectoryOrCreate");
  EXPECT_EQ(pv.HostPath("h"), d + "/made");
  EXPECT_EQ(ModeOf(d + "/made"), 0755u);
  setup(d + "/made", "Directory");
  setup(d + "/made/f", "FileOrCreate");
  EXPECT_TRUE(fs::is_regular_file(d + "/made/f"));
  setup(d + "/made/f", "File");

  std::string msg;
  EXPECT_EQ(CodeOf([&] { setup(d + "/missing", "Directory"); }, &msg), Code::kNotFound);
  EXPECT_EQ(msg, "hostPath type check failed: " + d + "/missing is not a directory");
  EXPECT_EQ(CodeOf([&] { setup(d + "/made/f", "Directory"); }, &msg), Code::kInvalid);
  EXPECT_NE(msg.find(d + "/made/f is not a directory"), std::string::npos);
  EXPECT_EQ(CodeOf([&] { setup(d + "/made", "File"); }, &msg), Code::kInvalid);
  EXPECT_NE(msg.find(d + "/made is not a file"), std::string::npos);
  EXPECT_EQ(CodeOf([&] { setup(d + "/made/f", "Socket"); }, &msg), Code::kInvalid);
  EXPECT_NE(msg.find("is not a socket file"), std::string::npos);
  EXPECT_EQ(CodeOf([&] { setup("/dev/null", "BlockDevice"); }, &msg), Code::kInvalid);
  EXPECT_NE(msg.find("/dev/null is not a block device"), std::string::npos);
  setup("/dev/null", "CharDevice");
  EXPECT_EQ(CodeOf([&] { setup(d + "/made", "Bogus"); }), Code::kInvalid);

  // A socket.
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string sock = d + "/s.sock";
  ASSERT_LT(sock.size(), sizeof(addr.sun_path));
  std::strncpy(addr.sun_path, sock.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  setup(sock, "Socket");
  ::close(fd);

  // The host path itself is the mount source, not something under the pod dir.
  Json c = {{"name", "app"},
            {"volumeMounts", Json::array({{{"name", "h"}, {"mountPath", "/data"}}})}};
  auto hpv = setup(d + "/made", "");
  auto mounts = hpv.MountsFor(Pod(Json::array(), Json::array({c})), c);
  ASSERT_EQ(mounts.size(), 1u);
  EXPECT_EQ(mounts[0].source, d + "/made");
  EXPECT_EQ(mounts[0].target, "/data");
  EXPECT_FALSE(mounts[0].read_only);
}

TEST_F(VolumesTest, UnsupportedVolumeTypeIsInvalid) {
  std::string msg;
  Error err(Code::kInternal, "");
  try {
    PodVolumes::Setup(
        Pod(Json::array({{{"name", "ok"}, {"emptyDir", Json::object()}},
                         {{"name", "data"}, {"nfs", {{"server", "x"}, {"path", "/"}}}}})),
        pod_dir_, ctx_);
    FAIL() << "no error";
  } catch (const Error& e) {
    err = e;
  }
  EXPECT_EQ(err.code(), Code::kInvalid);
  EXPECT_NE(err.message().find("spec.volumes[1]"), std::string::npos) << err.message();
  EXPECT_NE(err.message().find("nfs"), std::string::npos) << err.message();
  ASSERT_EQ(err.causes().size(), 1u);
  EXPECT_EQ(err.causes()[0].field, "spec.volumes[1]");
}

TEST_F(VolumesTest, MountsForReadOnlyAndSubPaths) {
  PutConfigMap("cfg", {{"app.conf", "conf"}});
  Json containers = Json::array(
      {{{"name", "side"}},
       {{"name", "app"},
        {"env", Json::array({{{"name", "POD"},
                              {"valueFrom", {{"fieldRef", {{"fieldPath", "metadata.name"}}}}}},
                             {{"name", "SUB"}, {"value", "logs/$(POD)"}}})},
        {"volumeMounts",
         Json::array(
             {{{"name", "scratch"}, {"mountPath", "/scratch"}},
              {{"name", "scratch"}, {"mountPath", "/ro"}, {"readOnly", true}},
              {{"name", "scratch"}, {"mountPath", "/sub"}, {"subPath", "a/b"}},
              {{"name", "scratch"}, {"mountPath", "/expr"}, {"subPathExpr", "$(SUB)"}},
              {{"name", "cfg"}, {"mountPath", "/etc/app"}},
              {{"name", "cfg"}, {"mountPath", "/etc/app.conf"}, {"subPath", "app.conf"}}})}}});
  Json pod = Pod(Json::array({{{"name", "scratch"}, {"emptyDir", Json::object()}},
                              {{"name", "cfg"}, {"configMap", {{"name", "cfg"}}}}}),
                 containers);
  auto pv = PodVolumes::Setup(pod, pod_dir_, ctx_);
  auto m = pv.MountsFor(pod, containers[1]);
  ASSERT_EQ(m.size(), 6u);
  EXPECT_EQ(m[0].source, VolDir("scratch"));
  EXPECT_EQ(m[0].target, "/scratch");
  EXPECT_FALSE(m[0].read_only);
  EXPECT_TRUE(m[1].read_only);
  EXPECT_EQ(m[2].source, VolDir("scratch") + "/a/b");
  EXPECT_TRUE(fs::is_directory(VolDir("scratch") + "/a/b"));
  EXPECT_EQ(ModeOf(VolDir("scratch") + "/a/b"), 0777u);
  EXPECT_EQ(m[3].source, VolDir("scratch") + "/logs/web-0");
  EXPECT_TRUE(fs::is_directory(m[3].source));
  EXPECT_EQ(m[4].source, VolDir("cfg"));
  EXPECT_TRUE(m[4].read_only);  // configMap volumes are always read-only
  // A key through subPath: the resolved file of the current payload.
  EXPECT_EQ(ReadAll(m[5].source), "conf");
  EXPECT_TRUE(m[5].read_only);
  EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(m[5].source)));
}

TEST_F(VolumesTest, MountsForErrors) {
  Json pod = Pod(Json::array({{{"name", "scratch"}, {"emptyDir", Json::object()}}}),
                 Json::array({{{"name", "a"}}, {{"name", "b"}}}));
  auto pv = PodVolumes::Setup(pod, pod_dir_, ctx_);
  auto with = [](Json mount) {
    return Json{{"name", "b"},
                {"volumeMounts", Json::array({{{"name", "scratch"}, {"mountPath", "/x"}}, mount})}};
  };
  std::string msg;
  EXPECT_EQ(
      CodeOf(
          [&] {
            pv.MountsFor(pod, with({{"name", "scratch"}, {"mountPath", "/y"}, {"subPath", "/etc"}}));
          },
          &msg),
      Code::kInvalid);
  EXPECT_NE(msg.find("spec.containers[1].volumeMounts[1].subPath"), std::string::npos) << msg;
  EXPECT_EQ(CodeOf(
                [&] {
                  pv.MountsFor(pod,
                      with({{"name", "scratch"}, {"mountPath", "/y"}, {"subPath", "a/../../x"}}));
                },
                &msg),
            Code::kInvalid);
  EXPECT_NE(msg.find("spec.containers[1].volumeMounts[1].subPath"), std::string::npos) << msg;
  EXPECT_EQ(CodeOf(
                [&] {
                  pv.MountsFor(pod, with({{"name", "nope"}, {"mountPath", "/y"}}));
                },
                &msg),
            Code::kInvalid);
  EXPECT_NE(msg.find("spec.containers[1].volumeMounts[1].name"), std::string::npos) << msg;
  EXPECT_NE(msg.find("nope"), std::string::npos) << msg;
  EXPECT_EQ(CodeOf(
                [&] {
                  pv.MountsFor(pod, with(
                      {{"name", "scratch"}, {"mountPath", "/y"}, {"subPathExpr", "$(UNSET)"}}));
                },
                &msg),
            Code::kInvalid);
  EXPECT_NE(msg.find("missing value for UNSET"), std::string::npos) << msg;
  // A symlink planted in the volume must not lead a subPath out of it.
  fs::create_symlink("/etc", VolDir("scratch") + "/escape");
  EXPECT_EQ(CodeOf([&] {
              pv.MountsFor(pod, with({{"name", "scratch"}, {"mountPath", "/y"}, {"subPath", "escape"}}));
            }),
            Code::kInvalid);
  EXPECT_EQ(CodeOf([&] { pv.HostPath("nope"); }, &msg), Code::kNotFound);
  EXPECT_NE(msg.find("nope"), std::string::npos);
}

TEST_F(VolumesTest, TeardownRemovesVolumesAndIsIdempotent) {
  PutConfigMap("cfg", {{"a", "1"}});
  PodVolumes::Setup(Pod(Json::array({{{"name", "scratch"}, {"emptyDir", Json::object()}},
                                     {{"name", "c"}, {"configMap", {{"name", "cfg"}}}}})),
                    pod_dir_, ctx_);
  std::ofstream(VolDir("scratch") + "/f") << "x";
  TeardownPodVolumes(pod_dir_);
  EXPECT_FALSE(fs::exists(pod_dir_ + "/volumes"));
  EXPECT_TRUE(fs::exists(pod_dir_));
  TeardownPodVolumes(pod_dir_);
  TeardownPodVolumes(tmp_ + "/never-made");
}

}  // namespace
}  // namespace kin

namespace kin {
namespace {

// persistentVolumeClaim volumes: the claim must exist and be Bound; then the
// volume's hostPath (or local path) is what containers mount, readOnly as the
// pod's volume source says.
TEST_F(VolumesTest, PersistentVolumeClaimMountsTheBoundVolumesPath) {
  const std::string data = tmp_ + "/pv-data";
  auto pod = [&](bool read_only) {
    Json source = {{"claimName", "data"}};
    if (read_only) source["readOnly"] = true;
    return Pod(Json::array({{{"name", "d"}, {"persistentVolumeClaim", source}}}),
               Json::array({{{"name", "app"},
                             {"image", "agnhost"},
                             {"volumeMounts", {{{"name", "d"}, {"mountPath", "/data"}}}}}}));
  };
  std::string msg;
  EXPECT_EQ(CodeOf([&] { PodVolumes::Setup(pod(false), pod_dir_, ctx_); }, &msg), Code::kNotFound);
  EXPECT_EQ(msg, "persistentvolumeclaim \"data\" not found");

  Json pvc = {{"metadata", {{"name", "data"}, {"namespace", "ns1"}}},
              {"spec", {{"accessModes", {"ReadWriteOnce"}}}},
              {"status", {{"phase", "Pending"}}}};
  objects_["PersistentVolumeClaim/ns1/data"] = pvc;
  EXPECT_EQ(CodeOf([&] { PodVolumes::Setup(pod(false), pod_dir_, ctx_); }, &msg),
            Code::kServiceUnavailable);
  EXPECT_EQ(msg, "persistentvolumeclaim \"data\" is not bound");

  pvc["spec"]["volumeName"] = "pv-1";
  pvc["status"]["phase"] = "Bound";
  objects_["PersistentVolumeClaim/ns1/data"] = pvc;
  EXPECT_EQ(CodeOf([&] { PodVolumes::Setup(pod(false), pod_dir_, ctx_); }, &msg), Code::kNotFound);
  EXPECT_EQ(msg, "persistentvolume \"pv-1\" not found");

  objects_["PersistentVolume//pv-1"] = {
      {"metadata", {{"name", "pv-1"}}},
      {"spec", {{"hostPath", {{"path", data}, {"type", "DirectoryOrCreate"}}}}}};
  PodVolumes rw = PodVolumes::Setup(pod(false), pod_dir_, ctx_);
  EXPECT_EQ(rw.HostPath("d"), data);
  EXPECT_TRUE(fs::is_directory(data));
  auto mounts = rw.MountsFor(pod(false), pod(false)["spec"]["containers"][0]);
  ASSERT_EQ(mounts.size(), 1u);
  EXPECT_EQ(mounts[0].source, data);
  EXPECT_EQ(mounts[0].target, "/data");
  EXPECT_FALSE(mounts[0].read_only);
  PodVolumes ro = PodVolumes::Setup(pod(true), pod_dir_, ctx_);
  EXPECT_TRUE(ro.MountsFor(pod(true), pod(true)["spec"]["containers"][0])[0].read_only);

  // The data is the volume's, not the pod's: tearing the pod down keeps it.
  std::ofstream(data + "/kept") << "x";
  TeardownPodVolumes(pod_dir_);
  EXPECT_TRUE(fs::exists(data + "/kept"));

  // Only hostPath and local volumes can be mounted here.
  objects_["PersistentVolume//pv-1"] = {{"metadata", {{"name", "pv-1"}}},
                                        {"spec", {{"nfs", {{"server", "x"}, {"path", "/"}}}}}};
  EXPECT_EQ(CodeOf([&] { PodVolumes::Setup(pod(false), pod_dir_, ctx_); }), Code::kInvalid);
}

}  // namespace
}  // namespace kin
