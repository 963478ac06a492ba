#include "testing/net_probe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "base/fd.h"
#include "base/netns.h"

namespace kin::testing {
namespace {

using Clock = std::chrono::steady_clock;

sockaddr_in Address(const std::string& ip, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

int RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// Waits for `events` on fd; 0 when ready, else ETIMEDOUT or errno.
int Wait(int fd, short events, Clock::time_point deadline) {
  pollfd p{fd, events, 0};
  int n = ::poll(&p, 1, RemainingMs(deadline));
  if (n < 0) return errno;
  return n == 0 ? ETIMEDOUT : 0;
}

// A connected non-blocking TCP socket, or the errno of the attempt.
int Connect(UniqueFd& fd, const std::string& ip, int port, Clock::time_point deadline) {
  fd = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return errno;
  sockaddr_in a = Address(ip, port);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return 0;
  if (errno != EINPROGRESS) return errno;
  if (int e = Wait(fd.get(), POLLOUT, deadline)) return e;
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  return err;
}

int SendAll(int fd, const std::string& data, Clock::time_point deadline) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && errno == EAGAIN) {
      if (int e = Wait(fd, POLLOUT, deadline)) return e;
    } else {
      return n < 0 ? errno : EPIPE;
    }
  }
  return 0;
}

// Reads one HTTP response (headers, then Content-Length bytes or up to EOF).
int ReadResponse(int fd, std::string& buffer, std::string& body, Clock::time_point deadline) {
  auto headers_end = std::string::npos;
  size_t length = std::string::npos;
  char chunk[4096];
  while (true) {
    if (headers_end == std::string::npos) {
      headers_end = buffer.find("\r\n\r\n");
      if (headers_end != std::string::npos) {
        std::string head = buffer.substr(0, headers_end);
        for (auto& ch : head) ch = static_cast<char>(::tolower(ch));
        auto cl = head.find("content-length:");
        if (cl != std::string::npos) length = std::stoul(head.substr(cl + 15));
      }
    }
    if (headers_end != std::string::npos && length != std::string::npos &&
        buffer.size() >= headers_end + 4 + length) {
      body = buffer.substr(headers_end + 4, length);
      buffer.erase(0, headers_end + 4 + length);
      return 0;
    }
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n > 0) {
      buffer.append(chunk, static_cast<size_t>(n));
    } else if (n == 0) {
      if (headers_end == std::string::npos) return ECONNRESET;
      body = buffer.substr(headers_end + 4);
      buffer.clear();
      return 0;
    } else if (errno == EAGAIN) {
      if (int e = Wait(fd, POLLIN, deadline)) return e;
    } else {
      return errno;
    }
  }
}

ProbeResult Timed(const std::string& netns, const std::function<void(ProbeResult&)>& fn) {
  ProbeResult r;
  auto start = Clock::now();
  RunInNetns(netns.starts_with('/') ? Netns::OpenPath(netns) : Netns::Open(netns), [&] { fn(r); });
  r.took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  return r;
}

}  // namespace

ProbeResult ExchangeIn(const std::string& netns, const std::string& ip, int port,
                       const std::string& request, const std::string& until,
                       std::chrono::milliseconds timeout) {
  return Timed(netns, [&](ProbeResult& r) {
    auto deadline = Clock::now() + timeout;
    UniqueFd fd;
    if ((r.error = Connect(fd, ip, port, deadline))) return;
    if ((r.error = SendAll(fd.get(), request, deadline))) return;
    char chunk[4096];
    while (until.empty() || r.body.find(until) == std::string::npos) {
      ssize_t n = ::recv(fd.get(), chunk, sizeof chunk, 0);
      if (n > 0) {
        r.body.append(chunk, static_cast<size_t>(n));
      } else if (n == 0) {
        return;
      } else if (errno == EAGAIN) {
        if ((r.error = Wait(fd.get(), POLLIN, deadline))) return;
      } else {
        r.error = errno;
        return;
      }
    }
  });
}

ProbeResult HttpGetIn(const std::string& netns, const std::string& ip, int port,
                      const std::string& path, std::chrono::milliseconds timeout) {
  return Timed(netns, [&](ProbeResult& r) {
    auto deadline = Clock::now() + timeout;
    UniqueFd fd;
    if ((r.error = Connect(fd, ip, port, deadline))) return;
    if ((r.error = SendAll(fd.get(), "GET " + path + " HTTP/1.0\r\nHost: " + ip + "\r\n\r\n",
                           deadline))) {
      return;
    }
    std::string buffer;
    r.error = ReadResponse(fd.get(), buffer, r.body, deadline);
  });
}

ProbeResult HttpGetsOnOneConnectionIn(const std::string& netns, const std::string& ip, int port,
                                      const std::string& path, int count,
                                      std::chrono::milliseconds timeout) {
  return Timed(netns, [&](ProbeResult& r) {
    auto deadline = Clock::now() + timeout;
    UniqueFd fd;
    if ((r.error = Connect(fd, ip, port, deadline))) return;
    std::string buffer;
    for (int i = 0; i < count; ++i) {
      if ((r.error = SendAll(fd.get(), "GET " + path + " HTTP/1.1\r\nHost: " + ip + "\r\n\r\n",
                             deadline))) {
        return;
      }
      std::string body;
      if ((r.error = ReadResponse(fd.get(), buffer, body, deadline))) return;
      if (i > 0) r.body += "\n";
      r.body += body;
    }
  });
}

ProbeResult TcpConnectIn(const std::string& netns, const std::string& ip, int port,
                         std::chrono::milliseconds timeout) {
  return Timed(netns, [&](ProbeResult& r) {
    UniqueFd fd;
    r.error = Connect(fd, ip, port, Clock::now() + timeout);
  });
}

ProbeResult UdpAskIn(const std::string& netns, const std::string& ip, int port,
                     const std::string& message, std::chrono::milliseconds timeout) {
  return Timed(netns, [&](ProbeResult& r) {
    auto deadline = Clock::now() + timeout;
    UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
      r.error = errno;
      return;
    }
    sockaddr_in a = Address(ip, port);
    // connect() so that an ICMP port unreachable surfaces as ECONNREFUSED.
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::send(fd.get(), message.data(), message.size(), 0) < 0) {
      r.error = errno;
      return;
    }
    if ((r.error = Wait(fd.get(), POLLIN, deadline))) return;
    char buf[2048];
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n < 0) {
      r.error = errno;
      return;
    }
    r.body.assign(buf, static_cast<size_t>(n));
  });
}

ProbeResult DnsTcpAskIn(const std::string& netns, const std::string& ip, int port,
                        const std::string& message, std::chrono::milliseconds timeout) {
  return Timed(netns, [&](ProbeResult& r) {
    auto deadline = Clock::now() + timeout;
    UniqueFd fd;
    if ((r.error = Connect(fd, ip, port, deadline))) return;
    std::string framed;
    framed.push_back(static_cast<char>(message.size() >> 8));
    framed.push_back(static_cast<char>(message.size() & 0xff));
    framed += message;
    if ((r.error = SendAll(fd.get(), framed, deadline))) return;
    std::string in;
    char buf[16384];
    auto want = [&] {
      return in.size() < 2
                 ? size_t{2}
                 : 2 + ((size_t{static_cast<uint8_t>(in[0])} << 8) | static_cast<uint8_t>(in[1]));
    };
    while (in.size() < want()) {
      if ((r.error = Wait(fd.get(), POLLIN, deadline))) return;
      ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
      if (n <= 0) {
        r.error = n < 0 ? errno : ECONNRESET;
        return;
      }
      in.append(buf, static_cast<size_t>(n));
    }
    r.body = in.substr(2, want() - 2);
  });
}

}  // namespace kin::testing
