#include "netstack/nftables.h"

#include <nftables/libnftables.h>

#include <cstring>

#include "base/error.h"

namespace kin::netstack {
namespace {

// nft's error buffer is "Error: ...\n<the line>\n<carets>\n" per problem;
// keep it whole but without the trailing newline.
std::string Trim(const char* text) {
  std::string s = text != nullptr ? text : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

NftContext::NftContext(std::string netns) : netns_(std::move(netns)) {
  if (netns_.empty()) throw Error::Invalid("nft: a network namespace name is required");
  try {
    ns_ = Netns::Open(netns_);
  } catch (const Error& e) {
    throw Error(e.code(), "netns `" + netns_ + "`: nft: " + e.message());
  }
  NetnsEnter enter(ns_);
  ctx_ = nft_ctx_new(NFT_CTX_DEFAULT);
  if (ctx_ == nullptr) throw Error::Internal("netns `" + netns_ + "`: nft: cannot create context");
  // Output and errors go to buffers we return, never to stdout/stderr.
  nft_ctx_buffer_output(ctx_);
  nft_ctx_buffer_error(ctx_);
}

NftContext::~NftContext() {
  if (ctx_ != nullptr) {
    // Freeing closes the socket; no namespace is needed for that.
    nft_ctx_free(ctx_);
  }
}

std::string NftContext::Exec(const std::string& script) {
  NetnsEnter enter(ns_);
  int rc = nft_run_cmd_from_buffer(ctx_, script.c_str());
  if (rc != 0) {
    std::string err = Trim(nft_ctx_get_error_buffer(ctx_));
    if (err.empty()) err = "command failed (no diagnostic)";
    std::string msg = "netns `" + netns_ + "`: nft: " + err;
    if (err.find("No such file or directory") != std::string::npos) throw Error::NotFound(msg);
    throw Error::Internal(msg);
  }
  const char* out = nft_ctx_get_output_buffer(ctx_);
  return out != nullptr ? std::string(out) : std::string();
}

void NftContext::Run(const std::string& script) { Exec(script); }

std::string NftContext::List(const std::string& command) { return Exec(command); }

bool NftContext::HasTable(const std::string& family, const std::string& name) {
  try {
    Exec("list table " + family + " " + name);
    return true;
  } catch (const Error& e) {
    if (e.code() == Code::kNotFound) return false;
    throw;
  }
}

}  // namespace kin::netstack
