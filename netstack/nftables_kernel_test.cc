// Kernel tests (root) of NftContext: a transaction applies in the named
// namespace only, a failing one applies nothing and names the namespace.
#include "netstack/nftables.h"

#include <gmock/gmock.h>
#include <nftables/libnftables.h>
#include <gtest/gtest.h>

#include "base/error.h"
#include "base/netns.h"
#include "testing/kernel_fixture.h"

namespace kin::netstack {
namespace {

using ::testing::HasSubstr;
using testing::KernelTest;

class NftContextTest : public KernelTest {};

TEST_F(NftContextTest, RunsAtomicallyInTheNamespace) {
  NamedNetns ns = NamedNetns::Create(Name("-n"));
  NftContext nft(ns.name());
  const std::string table = Name("-t", 64);
  nft.Run("table ip " + table + " {\n chain c {\n  type filter hook input priority 0;\n }\n}\n");
  EXPECT_TRUE(nft.HasTable("ip", table));
  EXPECT_THAT(nft.List("list table ip " + table), HasSubstr("chain c"));

  // Another namespace, and the host's, do not see it.
  NamedNetns other = NamedNetns::Create(Name("-m"));
  EXPECT_FALSE(NftContext(other.name()).HasTable("ip", table));

  // One bad command: nothing of the batch applies, and the error names the
  // namespace and what nft said.
  try {
    nft.Run("add chain ip " + table + " d\nadd rule ip " + table + " nosuch accept\n");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.message(), HasSubstr("netns `" + ns.name() + "`: nft: "));
    EXPECT_THAT(e.message(), HasSubstr("Could not process rule"));
    EXPECT_THAT(e.message(), ::testing::MatchesRegex(".*nft: line [12]:[0-9]+-[0-9]+: Error: .*"));
  }
  EXPECT_THAT(nft.List("list table ip " + table), ::testing::Not(HasSubstr("chain d")));

  // A syntax error names its line and quotes it.
  try {
    nft.Run("add chain ip " + table + " e\nadd rule ip " + table + " e ip daddr 1.2.3 accept\n");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_THAT(e.message(), HasSubstr("line 2:"));
    EXPECT_THAT(e.message(), HasSubstr("add rule ip " + table + " e ip daddr 1.2.3 accept"));
  }

  nft.Run("delete table ip " + table + "\n");
  EXPECT_FALSE(nft.HasTable("ip", table));
  try {
    nft.Run("delete table ip " + table + "\n");
    FAIL() << "expected NotFound";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound) << e.what();
  }
}

// The host's tables, read with a context of the test's own (root) namespace.
std::string HostTables() {
  nft_ctx* ctx = nft_ctx_new(NFT_CTX_DEFAULT);
  nft_ctx_buffer_output(ctx);
  nft_ctx_buffer_error(ctx);
  nft_run_cmd_from_buffer(ctx, "list tables");
  std::string out = nft_ctx_get_output_buffer(ctx);
  nft_ctx_free(ctx);
  return out;
}

// After ReleaseCache() the next command makes a new context, and it too
// works in the namespace, not in the calling thread's (the host's).
TEST_F(NftContextTest, ReleasedCacheRemakesTheContextInTheNamespace) {
  NamedNetns ns = NamedNetns::Create(Name("-n"));
  NftContext nft(ns.name());
  const std::string table = Name("-t", 64), second = Name("-u", 64);
  nft.Run("add table ip " + table + "\n");
  nft.ReleaseCache();
  nft.ReleaseCache();  // twice is harmless
  nft.Run("add table ip " + second + "\nadd chain ip " + table + " c\n");
  EXPECT_TRUE(nft.HasTable("ip", second));
  nft.ReleaseCache();
  EXPECT_THAT(nft.List("list table ip " + table), HasSubstr("chain c"));
  EXPECT_THAT(HostTables(), ::testing::Not(HasSubstr(second)));
  EXPECT_THAT(HostTables(), ::testing::Not(HasSubstr(table)));
}

TEST_F(NftContextTest, MissingNamespaceIsNotFound) {
  try {
    NftContext nft(Name("-none"));
    FAIL() << "expected NotFound";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kNotFound) << e.what();
    EXPECT_THAT(e.message(), HasSubstr(Name("-none")));
  }
}

}  // namespace
}  // namespace kin::netstack
