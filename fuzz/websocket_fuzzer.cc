// Fuzzes the WebSocket frame decoder (base/websocket.h, WebSocketDecoder):
// the bytes a client sends after the exec/attach/port-forward upgrade. The
// input is fed in pieces (sizes taken from its first byte) to exercise the
// decoder's buffering; a small message limit reaches the TooLarge path.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "base/error.h"
#include "base/websocket.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t chunk = 1 + (data[0] & 0x3f);
  const bool require_mask = (data[0] & 0x40) == 0;
  const size_t limit = (data[0] & 0x80) ? 64 : (1 << 20);
  std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  kin::WebSocketDecoder decoder(limit, require_mask);
  try {
    for (size_t pos = 0; pos < bytes.size(); pos += chunk) {
      decoder.Feed(bytes.substr(pos, chunk));
      while (auto msg = decoder.Next()) {
      }
    }
  } catch (const kin::Error&) {
    // A protocol violation or a message past the limit.
  }
  return 0;
}
