// Unit tests for the image store: name normalization, built-ins, and loading
// docker-save archives, OCI layouts and root filesystems built in temp dirs.
#include "runtime/image_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/error.h"
#include "base/process.h"
#include "base/version.h"

namespace kin {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void Write(const std::string& path, const std::string& content) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << content;
}

void RunOk(const std::vector<std::string>& argv) {
  CommandResult r = RunCommand(argv);
  ASSERT_TRUE(r.status.success()) << argv[0] << ": " << r.err;
}

TEST(NormalizeImageNameTest, FollowsDockerReferenceRules) {
  struct Case {
    const char* in;
    const char* out;
  };
  for (const Case& c : std::vector<Case>{
           {"busybox", "docker.io/library/busybox:latest"},
           {"busybox:1.36", "docker.io/library/busybox:1.36"},
           {"nginx:1.25", "docker.io/library/nginx:1.25"},
           {"library/nginx", "docker.io/library/nginx:latest"},
           {"bitnami/redis:7", "docker.io/bitnami/redis:7"},
           {"docker.io/busybox", "docker.io/library/busybox:latest"},
           {"index.docker.io/library/busybox:1", "docker.io/library/busybox:1"},
           {"registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"},
           {"registry.k8s.io/e2e-test-images/agnhost:2.52",
            "registry.k8s.io/e2e-test-images/agnhost:2.52"},
           {"localhost/app", "localhost/app:latest"},
           {"localhost:5000/app:v1", "localhost:5000/app:v1"},
           {"busybox@sha256:abcd", "docker.io/library/busybox@sha256:abcd"},
           {"quay.io/x/y:t@sha256:abcd", "quay.io/x/y:t@sha256:abcd"},
       }) {
    EXPECT_EQ(NormalizeImageName(c.in), c.out) << c.in;
  }
  EXPECT_THROW(NormalizeImageName(""), Error);
}

class ImageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kin-image-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    tmp_ = tmpl;
    store_dir_ = tmp_ + "/store";
  }
  void TearDown() override { fs::remove_all(tmp_); }

  ImageStoreOptions Options() {
    ImageStoreOptions o;
    o.dir = store_dir_;
    o.kin_binary = "/usr/local/bin/kin";
    return o;
  }

  // Two layers: the second deletes etc/gone with a whiteout, replaces
  // etc/replaced, makes data/ opaque (dropping data/old) and is gzipped.
  // Returns {layer1.tar, layer2.tar.gz}.
  std::pair<std::string, std::string> MakeLayers() {
    std::string l1 = tmp_ + "/l1", l2 = tmp_ + "/l2";
    Write(l1 + "/etc/keep", "keep\n");
    Write(l1 + "/etc/gone", "gone\n");
    Write(l1 + "/etc/replaced", "old\n");
    Write(l1 + "/data/old", "old\n");
    fs::create_symlink("keep", l1 + "/etc/link");
    Write(l2 + "/etc/.wh.gone", "");
    Write(l2 + "/etc/replaced", "new\n");
    Write(l2 + "/data/.wh..wh..opq", "");
    Write(l2 + "/data/new", "new\n");
    std::string t1 = tmp_ + "/layer1.tar", t2 = tmp_ + "/layer2.tar.gz";
    RunOk({"tar", "-cf", t1, "-C", l1, "."});
    RunOk({"tar", "-czf", t2, "-C", l2, "."});
    return {t1, t2};
  }

  void ExpectLayersApplied(const ImageConfig& c) {
    ASSERT_EQ(c.layers.size(), 1u);
    const std::string& root = c.layers[0];
    EXPECT_EQ(ReadAll(root + "/etc/keep"), "keep\n");
    EXPECT_EQ(ReadAll(root + "/etc/replaced"), "new\n");
    EXPECT_FALSE(fs::exists(root + "/etc/gone"));
    EXPECT_FALSE(fs::exists(root + "/etc/.wh.gone"));
    EXPECT_FALSE(fs::exists(root + "/data/old"));
    EXPECT_FALSE(fs::exists(root + "/data/.wh..wh..opq"));
    EXPECT_EQ(ReadAll(root + "/data/new"), "new\n");
    EXPECT_EQ(fs::read_symlink(root + "/etc/link"), "keep");
  }

  const std::string kConfig =
      R"({"architecture":"amd64","os":"linux","config":{"Entrypoint":["/bin/app"],)"
      R"("Cmd":["--flag"],"Env":["PATH=/bin","A=1"],"WorkingDir":"/srv","User":"1000:1000"}})";

  std::string tmp_, store_dir_;
};

TEST_F(ImageStoreTest, BuiltInAgnhostAndPauseRunKinItself) {
  ImageStore store(Options());
  ImageConfig a = store.Resolve("registry.k8s.io/e2e-test-images/agnhost:2.40");
  EXPECT_EQ(a.reference, "registry.k8s.io/e2e-test-images/agnhost:2.40");
  EXPECT_THAT(a.entrypoint, ElementsAre("/agnhost"));
  EXPECT_THAT(a.cmd, ElementsAre("pause"));
  EXPECT_THAT(a.layers, IsEmpty());
  ASSERT_EQ(a.command_aliases.size(), 1u);
  EXPECT_EQ(a.command_aliases[0].first, "/agnhost");
  EXPECT_THAT(a.command_aliases[0].second, ElementsAre("/usr/local/bin/kin", "agnhost"));

  for (const char* name : {"registry.k8s.io/pause:3.9", "k8s.gcr.io/pause:3.2"}) {
    ImageConfig p = store.Resolve(name);
    EXPECT_THAT(p.entrypoint, ElementsAre("/pause")) << name;
    EXPECT_THAT(p.layers, IsEmpty());
    ASSERT_EQ(p.command_aliases.size(), 1u);
    EXPECT_THAT(p.command_aliases[0].second, ElementsAre("/usr/local/bin/kin", "agnhost", "pause"));
  }
}

TEST_F(ImageStoreTest, BuiltInSystemImagesOnlyHoldThePod) {
  ImageStore store(Options());
  for (const char* name :
       {"kin.dev/cluster-dns:0.1.0", "kin.dev/ingress:0.1.0", "kin.dev/ingress"}) {
    ImageConfig c = store.Resolve(name);
    EXPECT_THAT(c.layers, IsEmpty()) << name;
    ASSERT_EQ(c.command_aliases.size(), 1u) << name;
    EXPECT_EQ(c.command_aliases[0].first, c.entrypoint.at(0)) << name;
    EXPECT_THAT(c.command_aliases[0].second, ElementsAre("/usr/local/bin/kin", "agnhost", "pause"));
  }
  EXPECT_THAT(store.Resolve("kin.dev/ingress:x").entrypoint, ElementsAre("/ingress-controller"));
}

TEST_F(ImageStoreTest, BuiltInBusyboxIsARootfsBuiltOnce) {
  if (!fs::exists("/bin/busybox")) GTEST_SKIP() << "busybox-static is not installed";
  ImageStore store(Options());
  ImageConfig c = store.Resolve("busybox:1.36");
  EXPECT_EQ(c.reference, "docker.io/library/busybox:1.36");
  EXPECT_THAT(c.cmd, ElementsAre("sh"));
  EXPECT_THAT(c.entrypoint, IsEmpty());
  EXPECT_THAT(c.env, ElementsAre("PATH=/usr/sbin:/usr/bin:/sbin:/bin"));
  ASSERT_EQ(c.layers.size(), 1u);
  const std::string root = c.layers[0];
  EXPECT_TRUE(fs::is_regular_file(root + "/bin/busybox"));
  EXPECT_EQ(fs::read_symlink(root + "/bin/sh"), "busybox");
  EXPECT_TRUE(fs::is_symlink(root + "/bin/wget"));
  EXPECT_THAT(ReadAll(root + "/etc/passwd"), HasSubstr("root:x:0:0:"));
  EXPECT_THAT(ReadAll(root + "/etc/passwd"), HasSubstr("nobody:x:65534:"));
  EXPECT_THAT(ReadAll(root + "/etc/group"), HasSubstr("root:x:0:"));
  struct stat st;
  ASSERT_EQ(::stat((root + "/tmp").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 01777u);
  for (const char* d : {"/proc", "/sys", "/dev"}) EXPECT_TRUE(fs::is_directory(root + d)) << d;
  // The same directory for every tag, also from another store instance.
  EXPECT_EQ(store.Resolve("docker.io/library/busybox").layers, c.layers);
  EXPECT_EQ(ImageStore(Options()).Resolve("busybox").layers, c.layers);
}

TEST_F(ImageStoreTest, UnknownImageIsNotFoundAndSaysHowToLoadIt) {
  ImageStore store(Options());
  try {
    store.Resolve("nginx:1.25");
    FAIL() << "expected NotFound";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound);
    EXPECT_EQ(e.message(),
              "image \"nginx:1.25\" is not present: load it with `kin load image-archive FILE` "
              "(docker save / OCI layout) or `kin load rootfs nginx:1.25 DIR|TARBALL`");
  }
}

TEST_F(ImageStoreTest, HostMappingIsTheRootfs) {
  ImageStoreOptions o = Options();
  o.host_mappings = {{"myorg/tool:1", tmp_}};
  ImageStore store(o);
  ImageConfig c = store.Resolve("docker.io/myorg/tool:1");
  EXPECT_THAT(c.layers, ElementsAre(tmp_));
  EXPECT_THAT(c.entrypoint, IsEmpty());
  EXPECT_THAT(c.cmd, IsEmpty());
  EXPECT_THROW(store.Resolve("myorg/tool:2"), Error);
}

TEST_F(ImageStoreTest, LoadsADockerSaveArchive) {
  auto [t1, t2] = MakeLayers();
  std::string save = tmp_ + "/save";
  fs::create_directories(save + "/aaa");
  fs::create_directories(save + "/bbb");
  fs::copy_file(t1, save + "/aaa/layer.tar");
  fs::copy_file(t2, save + "/bbb/layer.tar");
  Write(save + "/cfg.json", kConfig);
  Write(save + "/manifest.json",
        R"([{"Config":"cfg.json","RepoTags":["myapp:1.0","example.com/myapp:1.0"],)"
        R"("Layers":["aaa/layer.tar","bbb/layer.tar"]}])");
  std::string archive = tmp_ + "/image.tar";
  RunOk({"tar", "-cf", archive, "-C", save, "."});

  ImageStore store(Options());
  EXPECT_THAT(store.LoadArchive(archive),
              ElementsAre("docker.io/library/myapp:1.0", "example.com/myapp:1.0"));
  ImageConfig c = store.Resolve("myapp:1.0");
  EXPECT_EQ(c.reference, "docker.io/library/myapp:1.0");
  EXPECT_THAT(c.entrypoint, ElementsAre("/bin/app"));
  EXPECT_THAT(c.cmd, ElementsAre("--flag"));
  EXPECT_THAT(c.env, ElementsAre("PATH=/bin", "A=1"));
  EXPECT_EQ(c.working_dir, "/srv");
  EXPECT_EQ(c.user, "1000:1000");
  ExpectLayersApplied(c);
  EXPECT_EQ(store.Resolve("example.com/myapp:1.0").layers, c.layers);
  // No staging or unpacked archive is left behind.
  for (const auto& e : fs::directory_iterator(store_dir_)) {
    EXPECT_EQ(e.path().filename().string().rfind(".staging", 0), std::string::npos) << e.path();
  }
}

TEST_F(ImageStoreTest, LoadsAnOciLayoutTarAndDirectory) {
  auto [t1, t2] = MakeLayers();
  std::string oci = tmp_ + "/oci";
  std::string blobs = oci + "/blobs/sha256/";
  fs::create_directories(blobs);
  fs::copy_file(t1, blobs + "1111");
  fs::copy_file(t2, blobs + "2222");
  Write(blobs + "cccc", kConfig);
  Write(blobs + "mmmm",
        R"({"schemaVersion":2,"config":{"digest":"sha256:cccc"},"layers":[)"
        R"({"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:1111"},)"
        R"({"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:2222"}]})");
  // A multi-platform index in front of the manifest.
  Write(blobs + "iiii",
        R"({"schemaVersion":2,"manifests":[)"
        R"({"digest":"sha256:nope","platform":{"os":"linux","architecture":"arm64"}},)"
        R"({"digest":"sha256:mmmm","platform":{"os":"linux","architecture":"amd64"}}]})");
  Write(oci + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  Write(oci + "/index.json",
        R"({"schemaVersion":2,"manifests":[{"digest":"sha256:iiii",)"
        R"("annotations":{"org.opencontainers.image.ref.name":"example.com/team/app:2"}}]})");
  std::string archive = tmp_ + "/oci.tar";
  RunOk({"tar", "-cf", archive, "-C", oci, "."});

  ImageStore store(Options());
  EXPECT_THAT(store.LoadArchive(archive), ElementsAre("example.com/team/app:2"));
  ImageConfig c = store.Resolve("example.com/team/app:2");
  EXPECT_THAT(c.entrypoint, ElementsAre("/bin/app"));
  EXPECT_EQ(c.working_dir, "/srv");
  ExpectLayersApplied(c);

  // The layout as a directory, under another name via containerd's annotation.
  Write(oci + "/index.json",
        R"({"schemaVersion":2,"manifests":[{"digest":"sha256:mmmm","annotations":{)"
        R"("io.containerd.image.name":"docker.io/team/other:3",)"
        R"("org.opencontainers.image.ref.name":"3"}}]})");
  EXPECT_THAT(store.LoadArchive(oci), ElementsAre("docker.io/team/other:3"));
  ExpectLayersApplied(store.Resolve("team/other:3"));
}

TEST_F(ImageStoreTest, NeverWritesOrDeletesOutsideTheImage) {
  std::string outside = tmp_ + "/outside";
  fs::create_directories(outside);
  // An entry named with "..".
  std::string l = tmp_ + "/evil";
  Write(l + "/x/f", "x\n");
  std::string dotdot = tmp_ + "/dotdot.tar";
  RunOk({"tar", "-cPf", dotdot, "-C", l + "/x", "../x/f"});
  ImageStore store(Options());
  EXPECT_THROW(store.LoadRootfs("evil:1", dotdot), Error);

  // A symlink to the outside, then a file written through it.
  std::string s1 = tmp_ + "/s1", s2 = tmp_ + "/s2";
  fs::create_directories(s1);
  fs::create_symlink(outside, s1 + "/escape");
  Write(s2 + "/escape/pwned", "pwned\n");
  std::string a1 = tmp_ + "/s1.tar", a2 = tmp_ + "/s2.tar";
  RunOk({"tar", "-cf", a1, "-C", s1, "."});
  RunOk({"tar", "-cf", a2, "-C", s2, "escape/pwned"});  // no entry for escape/ itself
  std::string save = tmp_ + "/save";
  fs::create_directories(save);
  fs::copy_file(a1, save + "/a1.tar");
  fs::copy_file(a2, save + "/a2.tar");
  Write(save + "/cfg.json", kConfig);
  Write(save + "/manifest.json",
        R"([{"Config":"cfg.json","RepoTags":["evil:2"],"Layers":["a1.tar","a2.tar"]}])");
  // libarchive replaces the symlink with a directory rather than follow it.
  store.LoadArchive(save);
  EXPECT_FALSE(fs::exists(outside + "/pwned"));
  std::string layer = store.Resolve("evil:2").layers.at(0);
  EXPECT_FALSE(fs::is_symlink(layer + "/escape"));
  EXPECT_EQ(ReadAll(layer + "/escape/pwned"), "pwned\n");

  // A whiteout through the symlink deletes nothing outside.
  Write(outside + "/victim", "v\n");
  std::string s3 = tmp_ + "/s3";
  Write(s3 + "/escape/.wh.victim", "");
  RunOk({"tar", "-cf", save + "/a3.tar", "-C", s3, "escape/.wh.victim"});
  Write(save + "/manifest.json",
        R"([{"Config":"cfg.json","RepoTags":["evil:3"],"Layers":["a1.tar","a3.tar"]}])");
  store.LoadArchive(save);
  EXPECT_EQ(ReadAll(outside + "/victim"), "v\n");
}

TEST_F(ImageStoreTest, LoadsARootfsFromADirectoryAndATarball) {
  std::string dir = tmp_ + "/rootfs";
  Write(dir + "/hello.txt", "hello\n");
  fs::create_symlink("hello.txt", dir + "/link");
  std::string tarball = tmp_ + "/rootfs.tar.gz";
  RunOk({"tar", "-czf", tarball, "-C", dir, "."});

  ImageStore store(Options());
  store.LoadRootfs("fromdir", dir);
  store.LoadRootfs("example.com/fromtar:1", tarball);
  for (const char* name : {"fromdir", "example.com/fromtar:1"}) {
    ImageConfig c = store.Resolve(name);
    ASSERT_EQ(c.layers.size(), 1u) << name;
    EXPECT_NE(c.layers[0], dir);  // a copy: the store owns it
    EXPECT_EQ(ReadAll(c.layers[0] + "/hello.txt"), "hello\n") << name;
    EXPECT_EQ(fs::read_symlink(c.layers[0] + "/link"), "hello.txt");
    EXPECT_THAT(c.entrypoint, IsEmpty());
    EXPECT_THAT(c.cmd, IsEmpty());
  }
  // Loading again replaces the content and drops the old copy.
  std::string old_layer = store.Resolve("fromdir").layers[0];
  Write(dir + "/hello.txt", "again\n");
  store.LoadRootfs("fromdir", dir);
  std::string new_layer = store.Resolve("fromdir").layers[0];
  EXPECT_EQ(ReadAll(new_layer + "/hello.txt"), "again\n");
  EXPECT_FALSE(fs::exists(old_layer));
  EXPECT_THROW(store.LoadRootfs("missing", tmp_ + "/nope"), Error);
}

TEST_F(ImageStoreTest, ListAndPersistenceAcrossInstances) {
  std::string dir = tmp_ + "/rootfs";
  Write(dir + "/hello.txt", "hello\n");
  ImageStoreOptions o = Options();
  o.host_mappings = {{"mapped", tmp_}};
  {
    ImageStore store(o);
    store.LoadRootfs("mine:1", dir);
  }
  ImageStore again(o);
  EXPECT_THAT(
      again.List(),
      ElementsAre("docker.io/library/busybox:latest", "docker.io/library/mapped:latest",
                  "docker.io/library/mine:1", std::string("kin.dev/cluster-dns:") + kVersion,
                  std::string("kin.dev/ingress:") + kVersion,
                  "registry.k8s.io/e2e-test-images/agnhost:2.52", "registry.k8s.io/pause:3.9"));
  EXPECT_EQ(ReadAll(again.Resolve("mine:1").layers[0] + "/hello.txt"), "hello\n");
}

}  // namespace
}  // namespace kin
