// Test-only: an http::Conn over one end of a socketpair, and the pair, so
// the WebSocket and SPDY tests drive real framing over a real socket
// without a server in between.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <string_view>

#include "base/fd.h"
#include "base/http_server.h"

namespace kin::testing {

class FdConn : public http::Conn {
 public:
  explicit FdConn(int fd) : fd_(fd) {}
  long Read(char* buf, size_t n) override { return ::recv(fd_, buf, n, 0); }
  bool WriteAll(std::string_view data) override {
    while (!data.empty()) {
      ssize_t w = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (w <= 0) return false;
      data.remove_prefix(static_cast<size_t>(w));
    }
    return true;
  }
  bool WaitReadable(int timeout_ms) override {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) > 0;
  }
  bool PeerClosed() override { return false; }
  int fd() const override { return fd_; }

 private:
  int fd_;
};

struct SocketPair {
  UniqueFd server, client;
  SocketPair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    server.reset(fds[0]);
    client.reset(fds[1]);
  }
};

}  // namespace kin::testing
