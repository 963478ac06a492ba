// RegistryClient and ImagePuller against a real registry: Debian's
// docker-registry on loopback over HTTPS (a certificate from a test CA) and
// with Basic auth, an image pushed by skopeo. The CA given: pulled, stored,
// resolvable; not given: a certificate error; plain HTTP to it (insecure)
// fails too; wrong credentials: Unauthorized.
#include <gtest/gtest.h>

#include <filesystem>

#include "base/error.h"
#include "runtime/image_store.h"
#include "runtime/registry_client.h"
#include "testing/local_registry.h"

namespace kin {
namespace {

namespace fs = std::filesystem;

TEST(RegistryServerTest, PullsOverHttpsWithTheTestCaAndBasicAuth) {
  testing::TempDir work;
  std::string layout = testing::WriteImageLayout(work);
  testing::LocalRegistry reg("u", "p", /*tls=*/true);
  reg.Push(layout, "test/x:1", "u:p");
  const std::string image = reg.host() + "/test/x:1";
  Keyring keyring{{reg.host(), {"u", "p"}}};

  // No CA: the system's do not know the test CA.
  try {
    RegistryClient(RegistryOptions{}, work.File("blobs")).Pull(image, keyring);
    FAIL() << "pulled without the CA";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kServiceUnavailable) << e.what();
    EXPECT_NE(std::string(e.what()).find("https://" + reg.host()), std::string::npos) << e.what();
  }
  // Plain HTTP (listed insecure) to a TLS registry: an HTTP 400.
  RegistryOptions plain;
  plain.insecure = {reg.host()};
  EXPECT_THROW(RegistryClient(plain, work.File("blobs")).Pull(image, keyring), Error);

  RegistryOptions o;
  o.ca_file = reg.ca_file();
  // Wrong credentials.
  try {
    RegistryClient(o, work.File("blobs")).Pull(image, {{reg.host(), {"u", "wrong"}}});
    FAIL() << "pulled with a wrong password";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kUnauthorized) << e.what();
  }

  ImageStore store(ImageStoreOptions{work.File("store"), "/bin/true", {}, "/bin/busybox"});
  ImagePuller puller(store, o, store.BlobDir());
  PullOutcome out = puller.Pull(image, keyring).get();
  ASSERT_TRUE(out.ok) << out.error << reg.Log();
  ImageConfig c = store.Resolve(image);
  EXPECT_EQ(c.image_id, out.repo_digest);
  EXPECT_EQ(c.image_id.rfind(reg.host() + "/test/x@sha256:", 0), 0u) << c.image_id;
  EXPECT_EQ(c.cmd, (std::vector<std::string>{"/bin/sh", "-c", "echo pulled-ok; exec sleep 3600"}));
  ASSERT_EQ(c.layers.size(), 1u);
  EXPECT_TRUE(fs::exists(c.layers[0] + "/bin/busybox"));
  EXPECT_TRUE(fs::is_symlink(c.layers[0] + "/bin/sh"));
}

}  // namespace
}  // namespace kin
