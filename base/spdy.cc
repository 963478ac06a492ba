#include "base/spdy.h"

#include <strings.h>
#include <zlib.h>

#include <atomic>
#include <chrono>
#include <cstring>

#include "base/error.h"
#include "base/log.h"
#include "base/read_buffer.h"

namespace kin {

namespace {

// The SPDY/3 header compression dictionary (draft 3, section 2.6.10.1):
// length-prefixed header names and values, then a run of common text.
std::string BuildDictionary() {
  static constexpr const char* kWords[] = {"options",
                                           "head",
                                           "post",
                                           "put",
                                           "delete",
                                           "trace",
                                           "accept",
                                           "accept-charset",
                                           "accept-encoding",
                                           "accept-language",
                                           "accept-ranges",
                                           "age",
                                           "allow",
                                           "authorization",
                                           "cache-control",
                                           "connection",
                                           "content-base",
                                           "content-encoding",
                                           "content-language",
                                           "content-length",
                                           "content-location",
                                           "content-md5",
                                           "content-range",
                                           "content-type",
                                           "date",
                                           "etag",
                                           "expect",
                                           "expires",
                                           "from",
                                           "host",
                                           "if-match",
                                           "if-modified-since",
                                           "if-none-match",
                                           "if-range",
                                           "if-unmodified-since",
                                           "last-modified",
                                           "location",
                                           "max-forwards",
                                           "pragma",
                                           "proxy-authenticate",
                                           "proxy-authorization",
                                           "range",
                                           "referer",
                                           "retry-after",
                                           "server",
                                           "te",
                                           "trailer",
                                           "transfer-encoding",
                                           "upgrade",
                                           "user-agent",
                                           "vary",
                                           "via",
                                           "warning",
                                           "www-authenticate",
                                           "method",
                                           "get",
                                           "status",
                                           "200 OK",
                                           "version",
                                           "HTTP/1.1",
                                           "url",
                                           "public",
                                           "set-cookie",
                                           "keep-alive",
                                           "origin"};
  static constexpr const char* kTail =
      "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
      "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 "
      "Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 "
      "Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, "
      "Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,application/"
      "xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflate,"
      "sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";
  std::string d;
  for (const char* w : kWords) {
    uint32_t n = static_cast<uint32_t>(std::strlen(w));
    d.push_back(static_cast<char>(n >> 24));
    d.push_back(static_cast<char>(n >> 16));
    d.push_back(static_cast<char>(n >> 8));
    d.push_back(static_cast<char>(n));
    d += w;
  }
  d += kTail;
  return d;
}

void Put32(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>(v >> 24));
  out.push_back(static_cast<char>(v >> 16));
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}

uint32_t Get32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

void PutControlHeader(std::string& out, SpdyFrameType type, uint8_t flags, uint32_t length) {
  auto t = static_cast<uint16_t>(type);
  out.push_back(static_cast<char>(0x80));  // control bit, version 3
  out.push_back(3);
  out.push_back(static_cast<char>(t >> 8));
  out.push_back(static_cast<char>(t & 0xFF));
  Put32(out, (uint32_t{flags} << 24) | (length & 0xFFFFFF));
}

std::string EncodeNameValueBlock(const SpdyHeaders& headers) {
  std::string out;
  Put32(out, static_cast<uint32_t>(headers.size()));
  for (const auto& [name, value] : headers) {
    std::string lower = name;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    Put32(out, static_cast<uint32_t>(lower.size()));
    out += lower;
    Put32(out, static_cast<uint32_t>(value.size()));
    out += value;
  }
  return out;
}

SpdyHeaders ParseNameValueBlock(std::string_view b) {
  auto need = [&](size_t pos, size_t n) {
    if (pos + n > b.size()) throw Error::BadRequest("SPDY header block is truncated");
  };
  const auto* p = reinterpret_cast<const uint8_t*>(b.data());
  need(0, 4);
  uint32_t count = Get32(p);
  size_t pos = 4;
  SpdyHeaders h;
  for (uint32_t i = 0; i < count; ++i) {
    need(pos, 4);
    uint32_t nlen = Get32(p + pos);
    pos += 4;
    need(pos, nlen);
    std::string name(b.substr(pos, nlen));
    pos += nlen;
    need(pos, 4);
    uint32_t vlen = Get32(p + pos);
    pos += 4;
    need(pos, vlen);
    std::string value(b.substr(pos, vlen));
    pos += vlen;
    if (name.empty()) throw Error::BadRequest("SPDY header block has an empty header name");
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto [it, inserted] = h.emplace(name, value);
    if (!inserted) it->second += std::string(1, '\0') + value;
  }
  return h;
}

constexpr size_t kMaxHeaderBlockBytes = 1 << 20;

}  // namespace

std::string_view SpdyHeaderDictionary() {
  static const std::string dict = BuildDictionary();
  return dict;
}

// ---- encoder ----

struct SpdyEncoder::Zlib {
  z_stream z{};
  Zlib() {
    if (deflateInit(&z, Z_BEST_COMPRESSION) != Z_OK) throw Error::Internal("deflateInit failed");
    auto dict = SpdyHeaderDictionary();
    deflateSetDictionary(&z, reinterpret_cast<const Bytef*>(dict.data()),
                         static_cast<uInt>(dict.size()));
  }
  ~Zlib() { deflateEnd(&z); }
};

SpdyEncoder::SpdyEncoder() : z_(std::make_unique<Zlib>()) {}
SpdyEncoder::~SpdyEncoder() = default;

std::string SpdyEncoder::CompressHeaders(const SpdyHeaders& headers) {
  std::string plain = EncodeNameValueBlock(headers);
  std::string out;
  z_stream& z = z_->z;
  z.next_in = reinterpret_cast<Bytef*>(plain.data());
  z.avail_in = static_cast<uInt>(plain.size());
  char chunk[4096];
  do {
    z.next_out = reinterpret_cast<Bytef*>(chunk);
    z.avail_out = sizeof(chunk);
    int rc = deflate(&z, Z_SYNC_FLUSH);
    if (rc != Z_OK && rc != Z_BUF_ERROR) throw Error::Internal("SPDY header compression failed");
    out.append(chunk, sizeof(chunk) - z.avail_out);
  } while (z.avail_out == 0);
  return out;
}

std::string SpdyEncoder::Encode(const SpdyFrame& f) {
  std::string out;
  switch (f.type) {
    case SpdyFrameType::kData: {
      if (f.data.size() > spdy::kMaxDataLength) throw Error::Internal("SPDY data frame too long");
      Put32(out, f.stream_id & 0x7FFFFFFF);
      Put32(out, (uint32_t{f.flags} << 24) | static_cast<uint32_t>(f.data.size()));
      out += f.data;
      return out;
    }
    case SpdyFrameType::kSynStream: {
      std::string block = CompressHeaders(f.headers);
      PutControlHeader(out, f.type, f.flags, static_cast<uint32_t>(10 + block.size()));
      Put32(out, f.stream_id & 0x7FFFFFFF);
      Put32(out, f.associated_id & 0x7FFFFFFF);
      out.push_back(static_cast<char>((f.priority & 0x7) << 5));
      out.push_back(static_cast<char>(f.slot));
      out += block;
      return out;
    }
    case SpdyFrameType::kSynReply:
    case SpdyFrameType::kHeaders: {
      std::string block = CompressHeaders(f.headers);
      PutControlHeader(out, f.type, f.flags, static_cast<uint32_t>(4 + block.size()));
      Put32(out, f.stream_id & 0x7FFFFFFF);
      out += block;
      return out;
    }
    case SpdyFrameType::kRstStream:
      PutControlHeader(out, f.type, 0, 8);
      Put32(out, f.stream_id & 0x7FFFFFFF);
      Put32(out, f.status);
      return out;
    case SpdyFrameType::kSettings:
      PutControlHeader(out, f.type, f.flags, static_cast<uint32_t>(4 + 8 * f.settings.size()));
      Put32(out, static_cast<uint32_t>(f.settings.size()));
      for (const SpdySetting& s : f.settings) {
        Put32(out, (uint32_t{s.flags} << 24) | (s.id & 0xFFFFFF));
        Put32(out, s.value);
      }
      return out;
    case SpdyFrameType::kPing:
      PutControlHeader(out, f.type, 0, 4);
      Put32(out, f.ping_id);
      return out;
    case SpdyFrameType::kGoAway:
      PutControlHeader(out, f.type, 0, 8);
      Put32(out, f.stream_id & 0x7FFFFFFF);
      Put32(out, f.status);
      return out;
    case SpdyFrameType::kWindowUpdate:
      PutControlHeader(out, f.type, 0, 8);
      Put32(out, f.stream_id & 0x7FFFFFFF);
      Put32(out, f.delta & 0x7FFFFFFF);
      return out;
  }
  throw Error::Internal("unknown SPDY frame type");
}

// ---- decoder ----

struct SpdyDecoder::Zlib {
  z_stream z{};
  Zlib() {
    if (inflateInit(&z) != Z_OK) throw Error::Internal("inflateInit failed");
  }
  ~Zlib() { inflateEnd(&z); }
};

SpdyDecoder::SpdyDecoder(size_t max_frame_bytes)
    : z_(std::make_unique<Zlib>()), max_frame_bytes_(max_frame_bytes) {}
SpdyDecoder::~SpdyDecoder() = default;

SpdyHeaders SpdyDecoder::DecompressHeaders(std::string_view block) {
  z_stream& z = z_->z;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(block.data()));
  z.avail_in = static_cast<uInt>(block.size());
  std::string plain;
  char chunk[4096];
  while (true) {
    z.next_out = reinterpret_cast<Bytef*>(chunk);
    z.avail_out = sizeof(chunk);
    int rc = inflate(&z, Z_SYNC_FLUSH);
    if (rc == Z_NEED_DICT) {
      auto dict = SpdyHeaderDictionary();
      if (inflateSetDictionary(&z, reinterpret_cast<const Bytef*>(dict.data()),
                               static_cast<uInt>(dict.size())) != Z_OK) {
        throw Error::BadRequest("SPDY header block uses an unknown zlib dictionary");
      }
      continue;
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END) {
      throw Error::BadRequest(std::string("SPDY header block does not decompress: ") +
                              (z.msg ? z.msg : "zlib error"));
    }
    plain.append(chunk, sizeof(chunk) - z.avail_out);
    if (plain.size() > kMaxHeaderBlockBytes) {
      throw Error::BadRequest("SPDY header block larger than 1 MiB");
    }
    if (z.avail_out != 0 && (z.avail_in == 0 || rc == Z_BUF_ERROR || rc == Z_STREAM_END)) break;
  }
  if (z.avail_in != 0) throw Error::BadRequest("SPDY header block has trailing bytes");
  return ParseNameValueBlock(plain);
}

void SpdyDecoder::Feed(std::string_view bytes) { FeedReadBuffer(buf_, pos_, bytes); }

std::optional<SpdyFrame> SpdyDecoder::Next() {
  while (true) {
    const auto* p = reinterpret_cast<const uint8_t*>(buf_.data()) + pos_;
    size_t avail = buf_.size() - pos_;
    if (avail < 8) return std::nullopt;
    uint32_t first = Get32(p);
    uint32_t second = Get32(p + 4);
    uint8_t flags = static_cast<uint8_t>(second >> 24);
    uint32_t length = second & 0xFFFFFF;
    if (length > max_frame_bytes_) {
      throw Error::BadRequest("SPDY frame of " + std::to_string(length) + " bytes is too large");
    }
    if (avail < 8 + length) return std::nullopt;
    const uint8_t* body = p + 8;
    std::string_view body_view(reinterpret_cast<const char*>(body), length);
    pos_ += 8 + length;

    SpdyFrame f;
    f.flags = flags;
    if ((first & 0x80000000u) == 0) {
      f.type = SpdyFrameType::kData;
      f.stream_id = first & 0x7FFFFFFF;
      if (f.stream_id == 0) throw Error::BadRequest("SPDY data frame on stream 0");
      f.data.assign(body_view);
      return f;
    }
    uint16_t version = (first >> 16) & 0x7FFF;
    uint16_t type = first & 0xFFFF;
    if (version != 3) {
      throw Error::BadRequest("unsupported SPDY version " + std::to_string(version));
    }
    auto want = [&](uint32_t n, const char* what) {
      if (length < n) throw Error::BadRequest(std::string("SPDY ") + what + " frame is too short");
    };
    switch (type) {
      case static_cast<uint16_t>(SpdyFrameType::kSynStream):
        want(10, "SYN_STREAM");
        f.type = SpdyFrameType::kSynStream;
        f.stream_id = Get32(body) & 0x7FFFFFFF;
        f.associated_id = Get32(body + 4) & 0x7FFFFFFF;
        f.priority = body[8] >> 5;
        f.slot = body[9];
        f.headers = DecompressHeaders(body_view.substr(10));
        if (f.stream_id == 0) throw Error::BadRequest("SPDY SYN_STREAM for stream 0");
        return f;
      case static_cast<uint16_t>(SpdyFrameType::kSynReply):
      case static_cast<uint16_t>(SpdyFrameType::kHeaders):
        want(4, "SYN_REPLY/HEADERS");
        f.type = static_cast<SpdyFrameType>(type);
        f.stream_id = Get32(body) & 0x7FFFFFFF;
        f.headers = DecompressHeaders(body_view.substr(4));
        return f;
      case static_cast<uint16_t>(SpdyFrameType::kRstStream):
        want(8, "RST_STREAM");
        f.type = SpdyFrameType::kRstStream;
        f.stream_id = Get32(body) & 0x7FFFFFFF;
        f.status = Get32(body + 4);
        return f;
      case static_cast<uint16_t>(SpdyFrameType::kSettings): {
        want(4, "SETTINGS");
        f.type = SpdyFrameType::kSettings;
        uint32_t n = Get32(body);
        if (length != 4 + uint64_t{n} * 8) throw Error::BadRequest("SPDY SETTINGS length mismatch");
        for (uint32_t i = 0; i < n; ++i) {
          uint32_t fid = Get32(body + 4 + 8 * i);
          f.settings.push_back(SpdySetting{static_cast<uint8_t>(fid >> 24), fid & 0xFFFFFF,
                                           Get32(body + 8 + 8 * i)});
        }
        return f;
      }
      case static_cast<uint16_t>(SpdyFrameType::kPing):
        want(4, "PING");
        f.type = SpdyFrameType::kPing;
        f.ping_id = Get32(body);
        return f;
      case static_cast<uint16_t>(SpdyFrameType::kGoAway):
        want(4, "GOAWAY");
        f.type = SpdyFrameType::kGoAway;
        f.stream_id = Get32(body) & 0x7FFFFFFF;
        if (length >= 8) f.status = Get32(body + 4);
        return f;
      case static_cast<uint16_t>(SpdyFrameType::kWindowUpdate):
        want(8, "WINDOW_UPDATE");
        f.type = SpdyFrameType::kWindowUpdate;
        f.stream_id = Get32(body) & 0x7FFFFFFF;
        f.delta = Get32(body + 4) & 0x7FFFFFFF;
        return f;
      default:
        continue;  // unknown control frames are ignored (draft 3, 2.2.1)
    }
  }
}

// ---- HTTP upgrade ----

namespace {

std::vector<std::string> HeaderTokens(const http::Request& req, const std::string& name) {
  std::vector<std::string> out;
  auto [begin, end] = req.headers.equal_range(name);
  for (auto it = begin; it != end; ++it) {
    std::string_view v = it->second;
    while (true) {
      size_t comma = v.find(',');
      std::string_view item = v.substr(0, comma);
      while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
      while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
      if (!item.empty()) out.emplace_back(item);
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  return out;
}

bool HasTokenIgnoringCase(const std::vector<std::string>& tokens, std::string_view want) {
  for (const std::string& t : tokens) {
    if (t.size() == want.size() && ::strncasecmp(t.data(), want.data(), want.size()) == 0) {
      return true;
    }
  }
  return false;
}

std::string JoinBracketed(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? " " : "") + v[i];
  return out + "]";
}

}  // namespace

std::string AcceptSpdyUpgrade(const http::Request& req, const std::vector<std::string>& supported,
                              http::Response& resp) {
  if (!HasTokenIgnoringCase(HeaderTokens(req, "Connection"), "upgrade") ||
      !HasTokenIgnoringCase(HeaderTokens(req, "Upgrade"), spdy::kUpgradeProtocol)) {
    throw Error::BadRequest("unable to upgrade: missing upgrade headers in request");
  }
  std::vector<std::string> client = HeaderTokens(req, "X-Stream-Protocol-Version");
  if (client.empty()) {
    throw Error::BadRequest("unable to upgrade: X-Stream-Protocol-Version is required");
  }
  std::string chosen;
  for (const std::string& c : client) {
    for (const std::string& s : supported) {
      if (chosen.empty() && c == s) chosen = c;
    }
  }
  if (chosen.empty()) {
    throw Error::Forbidden("unable to upgrade: unable to negotiate protocol: client supports " +
                           JoinBracketed(client) + ", server accepts " + JoinBracketed(supported));
  }
  resp.status = 101;
  resp.body.clear();
  resp.headers.emplace("Connection", "Upgrade");
  resp.headers.emplace("Upgrade", spdy::kUpgradeProtocol);
  resp.headers.emplace("X-Stream-Protocol-Version", chosen);
  return chosen;
}

// ---- session ----

struct SpdyStream::Core {
  Core(http::Conn& c, SpdySessionOptions o) : conn(c), opts(o) {}

  http::Conn& conn;
  const SpdySessionOptions opts;

  std::mutex mu;
  std::condition_variable cv;  // any state change below
  std::map<uint32_t, std::shared_ptr<SpdyStream>> streams;
  std::deque<std::shared_ptr<SpdyStream>> accept_queue;
  uint32_t last_stream_id = 0;
  int64_t session_send_window = spdy::kDefaultWindow;
  int64_t peer_initial_window = spdy::kDefaultWindow;
  bool flow_control_observed = false;
  uint32_t session_unacked = 0;
  bool goaway_received = false;
  bool goaway_sent = false;
  bool done = false;
  bool closed = false;  // Close() ran
  std::atomic<bool> stopping{false};

  std::mutex write_mu;
  SpdyEncoder encoder;        // guarded by write_mu
  bool write_closed = false;  // guarded by write_mu

  bool SendFrame(const SpdyFrame& f) {
    std::lock_guard<std::mutex> lock(write_mu);
    if (write_closed) return false;
    std::string bytes = encoder.Encode(f);
    if (!conn.WriteAll(bytes)) {
      write_closed = true;
      return false;
    }
    return true;
  }
  bool SendWindowUpdate(uint32_t stream_id, uint32_t delta) {
    SpdyFrame f;
    f.type = SpdyFrameType::kWindowUpdate;
    f.stream_id = stream_id;
    f.delta = delta;
    return SendFrame(f);
  }
  bool SendRst(uint32_t stream_id, uint32_t status) {
    SpdyFrame f;
    f.type = SpdyFrameType::kRstStream;
    f.stream_id = stream_id;
    f.status = status;
    return SendFrame(f);
  }
  bool SendGoAway(uint32_t status) {
    uint32_t last;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (goaway_sent) return true;
      goaway_sent = true;
      last = last_stream_id;
    }
    SpdyFrame f;
    f.type = SpdyFrameType::kGoAway;
    f.stream_id = last;
    f.status = status;
    return SendFrame(f);
  }
};

std::string SpdyStream::Header(const std::string& name) const {
  auto it = headers_.find(name);
  return it == headers_.end() ? "" : it->second;
}

long SpdyStream::Read(char* buf, size_t n, int timeout_ms) {
  uint32_t window_update = 0;
  size_t take = 0;
  {
    std::unique_lock<std::mutex> lock(core_->mu);
    auto ready = [&] { return recv_pos_ < recv_.size() || remote_fin_ || reset_ || core_->done; };
    if (timeout_ms < 0) {
      core_->cv.wait(lock, ready);
    } else if (!core_->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), ready)) {
      return -1;
    }
    if (reset_ || recv_pos_ >= recv_.size() || n == 0) return 0;
    take = std::min(n, recv_.size() - recv_pos_);
    std::memcpy(buf, recv_.data() + recv_pos_, take);
    recv_pos_ += take;
    if (recv_pos_ == recv_.size()) {
      recv_.clear();
      recv_pos_ = 0;
    }
    unacked_consumed_ += static_cast<uint32_t>(take);
    if (!remote_fin_ && !core_->done && unacked_consumed_ >= core_->opts.receive_window / 2) {
      window_update = unacked_consumed_;
      unacked_consumed_ = 0;
    }
    core_->cv.notify_all();  // the reader may wait for buffer space
  }
  if (window_update > 0) core_->SendWindowUpdate(id_, window_update);
  return static_cast<long>(take);
}

bool SpdyStream::Write(std::string_view data) {
  constexpr size_t kMaxChunk = 32 * 1024;
  while (!data.empty()) {
    size_t chunk;
    {
      std::unique_lock<std::mutex> lock(core_->mu);
      core_->cv.wait(lock, [&] {
        return reset_ || local_fin_ || core_->done || !core_->flow_control_observed ||
               (send_window_ > 0 && core_->session_send_window > 0);
      });
      if (reset_ || local_fin_ || core_->done) return false;
      chunk = std::min(data.size(), kMaxChunk);
      if (core_->flow_control_observed) {
        chunk = std::min<size_t>(chunk, static_cast<size_t>(send_window_));
        chunk = std::min<size_t>(chunk, static_cast<size_t>(core_->session_send_window));
      }
      send_window_ -= static_cast<int64_t>(chunk);
      core_->session_send_window -= static_cast<int64_t>(chunk);
    }
    SpdyFrame f;
    f.type = SpdyFrameType::kData;
    f.stream_id = id_;
    f.data.assign(data.substr(0, chunk));
    if (!core_->SendFrame(f)) return false;
    data.remove_prefix(chunk);
  }
  return true;
}

bool SpdyStream::CloseWrite() {
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    if (local_fin_) return true;
    if (reset_ || core_->done) return false;
    local_fin_ = true;
    if (remote_fin_) core_->streams.erase(id_);  // fully closed: forget it
    core_->cv.notify_all();
  }
  SpdyFrame f;
  f.type = SpdyFrameType::kData;
  f.stream_id = id_;
  f.flags = spdy::kFlagFin;
  return core_->SendFrame(f);
}

void SpdyStream::Reset(uint32_t status) {
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    if (reset_ || core_->done) return;
    reset_ = true;
    recv_.clear();
    recv_pos_ = 0;
    core_->streams.erase(id_);
    core_->cv.notify_all();
  }
  core_->SendRst(id_, status);
}

bool SpdyStream::reset_by_peer() const {
  std::lock_guard<std::mutex> lock(core_->mu);
  return peer_reset_;
}

bool SpdyStream::remote_closed() const {
  std::lock_guard<std::mutex> lock(core_->mu);
  return remote_fin_ || reset_;
}

SpdySession::SpdySession(http::Conn& conn, SpdySessionOptions options)
    : core_(std::make_shared<SpdyStream::Core>(conn, options)) {
  if (options.receive_window != spdy::kDefaultWindow) {
    SpdyFrame f;
    f.type = SpdyFrameType::kSettings;
    f.settings.push_back({0, spdy::kSettingsInitialWindowSize, options.receive_window});
    core_->SendFrame(f);
  }
  reader_ = std::thread([this] { ReaderLoop(); });
}

SpdySession::~SpdySession() { Close(); }

std::shared_ptr<SpdyStream> SpdySession::AcceptStream(int timeout_ms) {
  std::unique_lock<std::mutex> lock(core_->mu);
  auto ready = [&] {
    return !core_->accept_queue.empty() || core_->done || core_->goaway_received;
  };
  if (timeout_ms < 0) {
    core_->cv.wait(lock, ready);
  } else if (!core_->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), ready)) {
    return nullptr;
  }
  if (core_->accept_queue.empty()) return nullptr;
  auto s = core_->accept_queue.front();
  core_->accept_queue.pop_front();
  return s;
}

void SpdySession::Close() {
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    if (core_->closed) return;
    core_->closed = true;
  }
  core_->SendGoAway(spdy::kGoAwayOk);
  core_->stopping = true;
  core_->cv.notify_all();
  if (reader_.joinable()) reader_.join();
  {
    std::lock_guard<std::mutex> lock(core_->write_mu);
    core_->write_closed = true;
  }
  std::lock_guard<std::mutex> lock(core_->mu);
  core_->done = true;
  // Streams keep core_ alive; dropping the session's references breaks the cycle.
  core_->streams.clear();
  core_->accept_queue.clear();
  core_->cv.notify_all();
}

bool SpdySession::done() const {
  std::lock_guard<std::mutex> lock(core_->mu);
  return core_->done;
}

bool SpdySession::WaitDone(int timeout_ms) {
  std::unique_lock<std::mutex> lock(core_->mu);
  return core_->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                            [&] { return core_->done; });
}

bool SpdySession::goaway_received() const {
  std::lock_guard<std::mutex> lock(core_->mu);
  return core_->goaway_received;
}

void SpdySession::ReaderLoop() {
  SpdyDecoder decoder(core_->opts.max_frame_bytes);
  std::string buf(64 * 1024, '\0');
  try {
    while (!core_->stopping) {
      if (!core_->conn.WaitReadable(100)) continue;
      if (core_->stopping) break;
      long n = core_->conn.Read(buf.data(), buf.size());
      if (n <= 0) break;
      decoder.Feed(std::string_view(buf.data(), static_cast<size_t>(n)));
      while (!core_->stopping) {
        auto frame = decoder.Next();
        if (!frame) break;
        Dispatch(*frame);
      }
    }
  } catch (const Error& e) {
    log::Warn("spdy: ending session: {}", e.message());
    core_->SendGoAway(spdy::kGoAwayProtocolError);
  }
  std::lock_guard<std::mutex> lock(core_->mu);
  core_->done = true;
  core_->cv.notify_all();
}

void SpdySession::Dispatch(SpdyFrame& f) {
  SpdyStream::Core& c = *core_;
  switch (f.type) {
    case SpdyFrameType::kSynStream: {
      bool refuse = false;
      bool invalid = false;
      std::shared_ptr<SpdyStream> s;
      {
        std::lock_guard<std::mutex> lock(c.mu);
        if (f.stream_id % 2 == 0 || f.stream_id <= c.last_stream_id) {
          invalid = true;
        } else if (c.goaway_sent) {
          refuse = true;
        } else {
          c.last_stream_id = f.stream_id;
          s.reset(new SpdyStream(core_, f.stream_id, std::move(f.headers),
                                 static_cast<uint32_t>(c.peer_initial_window)));
          s->remote_fin_ = (f.flags & spdy::kFlagFin) != 0;
          s->local_fin_ = (f.flags & spdy::kFlagUnidirectional) != 0;
        }
      }
      if (invalid) {
        c.SendRst(f.stream_id, spdy::kProtocolError);
        return;
      }
      if (refuse) {
        c.SendRst(f.stream_id, spdy::kRefusedStream);
        return;
      }
      // Reply before the stream is visible, so the reply precedes its data.
      if ((f.flags & spdy::kFlagUnidirectional) == 0) {
        SpdyFrame reply;
        reply.type = SpdyFrameType::kSynReply;
        reply.stream_id = f.stream_id;
        c.SendFrame(reply);
      }
      std::lock_guard<std::mutex> lock(c.mu);
      c.streams[s->id_] = s;
      c.accept_queue.push_back(s);
      c.cv.notify_all();
      return;
    }
    case SpdyFrameType::kData: {
      uint32_t session_update = 0;
      {
        std::unique_lock<std::mutex> lock(c.mu);
        c.session_unacked += static_cast<uint32_t>(f.data.size());
        if (c.session_unacked >= c.opts.receive_window / 2) {
          session_update = c.session_unacked;
          c.session_unacked = 0;
        }
        auto it = c.streams.find(f.stream_id);
        if (it != c.streams.end()) {
          std::shared_ptr<SpdyStream> s = it->second;
          if (!s->reset_ && !s->remote_fin_) {
            s->recv_ += f.data;
            if ((f.flags & spdy::kFlagFin) != 0) {
              s->remote_fin_ = true;
              if (s->local_fin_) c.streams.erase(f.stream_id);  // fully closed
            }
            c.cv.notify_all();
            // Backpressure for peers that ignore windows (spdystream).
            c.cv.wait(lock, [&] {
              return s->recv_.size() - s->recv_pos_ <= c.opts.max_buffered_bytes || s->reset_ ||
                     c.stopping || c.done;
            });
          }
        }
      }
      if (session_update > 0) c.SendWindowUpdate(0, session_update);
      return;
    }
    case SpdyFrameType::kRstStream: {
      std::lock_guard<std::mutex> lock(c.mu);
      auto it = c.streams.find(f.stream_id);
      if (it == c.streams.end()) return;
      it->second->reset_ = true;
      it->second->peer_reset_ = true;
      it->second->recv_.clear();
      it->second->recv_pos_ = 0;
      c.streams.erase(it);
      c.cv.notify_all();
      return;
    }
    case SpdyFrameType::kHeaders: {
      if ((f.flags & spdy::kFlagFin) == 0) return;
      std::lock_guard<std::mutex> lock(c.mu);
      auto it = c.streams.find(f.stream_id);
      if (it != c.streams.end()) it->second->remote_fin_ = true;
      c.cv.notify_all();
      return;
    }
    case SpdyFrameType::kSettings: {
      std::lock_guard<std::mutex> lock(c.mu);
      for (const SpdySetting& s : f.settings) {
        if (s.id != spdy::kSettingsInitialWindowSize) continue;
        int64_t delta = int64_t{s.value} - c.peer_initial_window;
        c.peer_initial_window = s.value;
        c.flow_control_observed = true;
        for (auto& [id, stream] : c.streams) stream->send_window_ += delta;
      }
      c.cv.notify_all();
      return;
    }
    case SpdyFrameType::kPing:
      // Odd ids come from the client; even ones would be answers to ours.
      if (f.ping_id % 2 == 1) c.SendFrame(f);
      return;
    case SpdyFrameType::kGoAway: {
      std::lock_guard<std::mutex> lock(c.mu);
      c.goaway_received = true;
      c.cv.notify_all();
      return;
    }
    case SpdyFrameType::kWindowUpdate: {
      std::lock_guard<std::mutex> lock(c.mu);
      c.flow_control_observed = true;
      if (f.stream_id == 0) {
        c.session_send_window += f.delta;
      } else {
        auto it = c.streams.find(f.stream_id);
        if (it != c.streams.end()) it->second->send_window_ += f.delta;
      }
      c.cv.notify_all();
      return;
    }
    case SpdyFrameType::kSynReply:
      return;  // we open no streams
  }
}

}  // namespace kin
