// Kernel tests (root) of NftContext: a transaction applies in the named
// namespace only, a failing one applies nothing and names the namespace.
#include "netstack/nftables.h"

#include <gmock/gmock.h>
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
