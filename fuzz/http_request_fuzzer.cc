// Fuzzes the HTTP/1.1 request reading of base/http_server.h (RequestReader,
// what Server runs on every connection): the request line and headers, their
// limits, Content-Length and chunked bodies with their sizes, extensions and
// trailers, and pipelined requests after them. The bytes come from an
// in-memory connection, not a socket, so a run takes microseconds.
//
// The input is read twice: in one piece, and in pieces whose sizes its first
// byte picks (a request split anywhere, as TCP may split it). Both must give
// the same requests and end the same way; a refusal must be one of the
// statuses the server documents; no body may pass the limit. The first
// byte's top bit picks small limits (reached by small inputs) or the
// server's defaults.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "base/http_server.h"

namespace {

using kin::http::Request;
using kin::http::RequestReader;

// A connection whose peer sent `data` and then closed; each Read returns at
// most `piece` bytes (0: as much as asked for).
class MemConn : public kin::http::Conn {
 public:
  MemConn(std::string_view data, size_t piece) : data_(data), piece_(piece) {}
  long Read(char* buf, size_t n) override {
    if (piece_ > 0) n = std::min(n, piece_);
    n = std::min(n, data_.size());
    std::memcpy(buf, data_.data(), n);
    data_.remove_prefix(n);
    return static_cast<long>(n);
  }
  bool WriteAll(std::string_view) override { return true; }  // 100 Continue
  bool WaitReadable(int) override { return true; }  // data, or the end of it, is always there
  bool PeerClosed() override { return data_.empty(); }
  int fd() const override { return -1; }

 private:
  std::string_view data_;
  size_t piece_;
};

struct Outcome {
  std::vector<Request> requests;
  RequestReader::Result end;
};

bool SameRequest(const Request& a, const Request& b) {
  return a.method == b.method && a.target == b.target && a.path == b.path &&
         a.raw_query == b.raw_query && a.query == b.query && a.headers == b.headers &&
         a.body == b.body;
}

Outcome ReadAll(std::string_view data, size_t piece, const kin::http::ServerOptions& opts) {
  MemConn conn(data, piece);
  RequestReader reader(conn, opts);
  Outcome out;
  while (true) {
    Request req;
    out.end = reader.Next(req);
    if (out.end.kind != RequestReader::Result::kRequest) break;
    // Every request holds at least its request line and blank line.
    if (out.requests.size() > data.size() / 18) abort();
    out.requests.push_back(std::move(req));
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  kin::http::ServerOptions opts;
  if ((data[0] & 0x80) != 0) {
    opts.max_body_bytes = 300;
    opts.max_header_bytes = 200;
    opts.max_header_line_bytes = 64;
  }
  const size_t piece = 1 + (data[0] & 0x7f);
  std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);

  Outcome whole = ReadAll(bytes, 0, opts);
  Outcome split = ReadAll(bytes, piece, opts);

  for (const Outcome* o : {&whole, &split}) {
    for (const Request& r : o->requests) {
      if (r.method.empty() || r.target.empty() || r.body.size() > opts.max_body_bytes) abort();
    }
    using R = RequestReader::Result;
    switch (o->end.kind) {
      case R::kRequest:
        abort();
      case R::kIdle:
      case R::kClosed:
        break;
      case R::kRefused: {
        // 408 would mean a read waited on a connection that never waits.
        const int s = o->end.status;
        if (s != 400 && s != 413 && s != 431 && s != 501) abort();
        if (o->end.message.empty()) abort();
        break;
      }
    }
  }
  // Where the reads split the bytes changes nothing.
  if (whole.requests.size() != split.requests.size()) abort();
  for (size_t i = 0; i < whole.requests.size(); ++i) {
    if (!SameRequest(whole.requests[i], split.requests[i])) abort();
  }
  const bool whole_refused = whole.end.kind == RequestReader::Result::kRefused;
  const bool split_refused = split.end.kind == RequestReader::Result::kRefused;
  if (whole_refused != split_refused) abort();
  if (whole_refused && whole.end.status != split.end.status) abort();
  return 0;
}
