// Fuzzes the SPDY/3.1 frame decoder (base/spdy.h, SpdyDecoder): the bytes
// kubectl sends on an exec/attach/port-forward SPDY upgrade, including
// zlib-compressed header blocks. The input is fed in pieces (sizes from its
// first byte) to exercise the decoder's buffering.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/error.h"
#include "base/spdy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t chunk = 1 + data[0];
  std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  kin::SpdyDecoder decoder(1 << 20);
  try {
    for (size_t pos = 0; pos < bytes.size(); pos += chunk) {
      decoder.Feed(bytes.substr(pos, chunk));
      while (auto frame = decoder.Next()) {
      }
    }
  } catch (const kin::Error&) {
    // A malformed frame or header block.
  }
  return 0;
}
