// nftables through libnftables, in a named network namespace.
//
// NftContext owns one libnftables context (struct nft_ctx) bound to the
// network namespace /run/netns/NAME. Run() hands a whole nft script to
// libnftables, which sends it to the kernel as ONE netlink batch: either every
// command applies or none does (the transaction kube-proxy's nftables mode
// relies on). List() runs a read command ("list table ip kin-proxy") and
// returns nft's text output, for tests and diagnostics.
//
// libnftables opens its netlink socket lazily (at the first command, not at
// nft_ctx_new), and a socket belongs to the namespace of the thread that
// opened it. So the context is created, and every command is run, while the
// calling thread has entered the namespace (NetnsEnter, undone before the
// call returns): the socket is bound to the right namespace whenever it is
// opened, and the caller's thread is back in its own namespace afterwards.
// The host's root namespace is never used: the name is required.
//
// The context, and with it libnftables' cache of the ruleset (which it
// keeps current across its own commits), lives until ReleaseCache(); the
// next command makes a new one. Keeping it pays at scale: a context per
// command made a one-endpoint sync at 1,000 Services five times slower
// (3 -> 16 ms), each command re-reading the table first. But the cache
// costs about 0.6 MiB per table whatever its size (libnftables' fixed hash
// tables), and re-reading a small table costs well under a millisecond: a
// user with a small ruleset releases it after each transaction (the
// service proxy does; its three nodes' caches were 3.5 MiB of kin serve).
//
// Errors are kin::Error "netns `NAME`: nft: line 12:5-9: Error: <nft's
// text>" followed by the line and carets (NotFound when nft says "No such
// file or directory", e.g. deleting a missing table; Internal otherwise),
// so the namespace, the command and nft's own diagnosis all show. (Scripts
// reach libnftables through a memfd: given a buffer, nft 1.0.6 quotes its
// first line under every error.)
//
// Thread-safety: thread-compatible (one thread at a time per NftContext;
// distinct contexts may be used concurrently). Never copyable.
#pragma once

#include <string>

#include "base/netns.h"

struct nft_ctx;

namespace kin::netstack {

class NftContext {
 public:
  // Opens /run/netns/NAME (NotFound if missing) and creates the context.
  explicit NftContext(std::string netns);
  ~NftContext();
  NftContext(const NftContext&) = delete;
  NftContext& operator=(const NftContext&) = delete;

  // Runs `script` (nft syntax, several commands) as one atomic transaction.
  // nft 1.0.6 wants a newline, not only a space, before a closing brace.
  void Run(const std::string& script);
  // Runs a read command ("list table ip kin-proxy", "list ruleset") and
  // returns its output.
  std::string List(const std::string& command);
  // Whether `family` table `name` exists in the namespace.
  bool HasTable(const std::string& family, const std::string& name);
  // Frees the context and its cache of the ruleset; the next command
  // creates a new one (in the namespace, as the first did).
  void ReleaseCache();

  const std::string& netns() const { return netns_; }

 private:
  std::string Exec(const std::string& script);
  // Creates ctx_ (the calling thread in the namespace).
  void CreateContextLocked();

  std::string netns_;
  Netns ns_;
  nft_ctx* ctx_ = nullptr;
};

}  // namespace kin::netstack
