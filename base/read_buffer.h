// The read buffer the stream decoders (WebSocket, SPDY) share: bytes come
// in by Feed, frames are parsed from `pos` on. Consumed bytes are dropped
// when everything was read, or once they are over 1 MiB and more than half
// the buffer, so a long stream neither grows without bound nor moves its
// bytes on every feed.
#pragma once

#include <string>
#include <string_view>

namespace kin {

inline void FeedReadBuffer(std::string& buf, size_t& pos, std::string_view bytes) {
  if (pos > 0 && pos == buf.size()) {
    buf.clear();
    pos = 0;
  } else if (pos > (1 << 20) && pos > buf.size() / 2) {
    buf.erase(0, pos);
    pos = 0;
  }
  buf.append(bytes);
}

}  // namespace kin
