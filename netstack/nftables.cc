#include "netstack/nftables.h"

#include <nftables/libnftables.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

#include <cstring>

#include "base/error.h"
#include "base/fd.h"

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
  CreateContextLocked();
}

void NftContext::CreateContextLocked() {
  ctx_ = nft_ctx_new(NFT_CTX_DEFAULT);
  if (ctx_ == nullptr) throw Error::Internal("netns `" + netns_ + "`: nft: cannot create context");
  // Output and errors go to buffers we return, never to stdout/stderr.
  nft_ctx_buffer_output(ctx_);
  nft_ctx_buffer_error(ctx_);
}

void NftContext::ReleaseCache() {
  if (ctx_ != nullptr) nft_ctx_free(ctx_);
  ctx_ = nullptr;
}

NftContext::~NftContext() {
  if (ctx_ != nullptr) {
    // Freeing closes the socket; no namespace is needed for that.
    nft_ctx_free(ctx_);
  }
}

std::string NftContext::Exec(const std::string& script) {
  // nft 1.0.6 quotes the first line of a buffer under every error, whatever
  // line failed; reading a file it names and quotes the right one. So the
  // script goes through a memfd, and errors read "line 12:5-9: Error: ...".
  UniqueFd fd(::memfd_create("kin-nft", MFD_CLOEXEC));
  if (!fd) throw ErrnoError(errno, "netns `" + netns_ + "`: nft: memfd_create");
  for (size_t done = 0; done < script.size();) {
    ssize_t n = ::write(fd.get(), script.data() + done, script.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw ErrnoError(errno, "netns `" + netns_ + "`: nft: write script");
    done += static_cast<size_t>(n);
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd.get());
  NetnsEnter enter(ns_);
  if (ctx_ == nullptr) CreateContextLocked();
  int rc = nft_run_cmd_from_filename(ctx_, path.c_str());
  if (rc != 0) {
    std::string err = Trim(nft_ctx_get_error_buffer(ctx_));
    if (err.empty()) err = "command failed (no diagnostic)";
    for (size_t at; (at = err.find(path + ":")) != std::string::npos;) {
      err.replace(at, path.size() + 1, "line ");
    }
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
