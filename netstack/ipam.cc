#include "netstack/ipam.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "base/error.h"

namespace kin::netstack {

namespace {

Error InvalidValue(std::string_view what, std::string_view text, std::string_view field,
                   const std::string& why) {
  std::string message;
  if (!field.empty()) message = std::string(field) + ": ";
  message += "invalid " + std::string(what) + " \"" + std::string(text) + "\": " + why;
  Error e = Error::Invalid(message);
  if (!field.empty()) {
    e.WithCause({"FieldValueInvalid", "Invalid value: \"" + std::string(text) + "\": " + why,
                 std::string(field)});
  }
  return e;
}

// Strict decimal: 1-3 digits (max < 256 checked by caller), no leading zeros
// (which some parsers read as octal).
std::optional<unsigned> ParseDecimal(std::string_view s, unsigned max) {
  if (s.empty() || s.size() > 3) return std::nullopt;
  if (s.size() > 1 && s[0] == '0') return std::nullopt;
  unsigned v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > max) return std::nullopt;
  return v;
}

}  // namespace

// ---- Ipv4Address ----

std::optional<Ipv4Address> Ipv4Address::TryParse(std::string_view text) {
  uint32_t v = 0;
  size_t start = 0;
  for (int i = 0; i < 4; i++) {
    size_t dot = text.find('.', start);
    if ((i < 3) != (dot != std::string_view::npos)) return std::nullopt;
    std::string_view part = text.substr(start, i < 3 ? dot - start : std::string_view::npos);
    auto octet = ParseDecimal(part, 255);
    if (!octet) return std::nullopt;
    v = (v << 8) | *octet;
    start = dot + 1;
  }
  return Ipv4Address(v);
}

Ipv4Address Ipv4Address::Parse(std::string_view text, std::string_view field) {
  auto a = TryParse(text);
  if (!a) {
    throw InvalidValue("IPv4 address", text, field,
                       "must be four decimal numbers 0-255 separated by dots, e.g. 10.244.1.5");
  }
  return *a;
}

uint32_t Ipv4Address::network_order() const { return htonl(value_); }

Ipv4Address Ipv4Address::FromNetworkOrder(uint32_t be) { return Ipv4Address(ntohl(be)); }

std::string Ipv4Address::ToString() const {
  return std::to_string(value_ >> 24) + "." + std::to_string((value_ >> 16) & 0xff) + "." +
         std::to_string((value_ >> 8) & 0xff) + "." + std::to_string(value_ & 0xff);
}

// ---- Ipv4Cidr ----

Ipv4Cidr::Ipv4Cidr(Ipv4Address address, int prefix_len)
    : address_(address), prefix_len_(prefix_len) {
  if (prefix_len < 0 || prefix_len > 32) {
    throw Error::Invalid("invalid prefix length " + std::to_string(prefix_len) + " for " +
                         address.ToString() + ": must be 0..32");
  }
}

Ipv4Cidr Ipv4Cidr::Parse(std::string_view text, std::string_view field) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    throw InvalidValue("CIDR", text, field,
                       "must be an address and a prefix length, e.g. "
                       "10.244.1.0/24");
  }
  auto address = Ipv4Address::TryParse(text.substr(0, slash));
  if (!address) {
    throw InvalidValue("CIDR", text, field,
                       "\"" + std::string(text.substr(0, slash)) + "\" is not an IPv4 address");
  }
  auto len = ParseDecimal(text.substr(slash + 1), 32);
  if (!len) throw InvalidValue("CIDR", text, field, "prefix length must be a number 0..32");
  return Ipv4Cidr(*address, static_cast<int>(*len));
}

Ipv4Cidr Ipv4Cidr::ParseNetwork(std::string_view text, std::string_view field) {
  Ipv4Cidr c = Parse(text, field);
  if (!c.is_network()) {
    throw InvalidValue("CIDR", text, field,
                       "host bits are set (the network is " + c.Masked().ToString() + ")");
  }
  return c;
}

uint32_t Ipv4Cidr::netmask() const {
  return prefix_len_ == 0 ? 0 : ~uint32_t{0} << (32 - prefix_len_);
}

Ipv4Address Ipv4Cidr::network() const { return Ipv4Address(address_.value() & netmask()); }

Ipv4Address Ipv4Cidr::broadcast() const { return Ipv4Address(address_.value() | ~netmask()); }

bool Ipv4Cidr::Contains(Ipv4Address a) const {
  return (a.value() & netmask()) == network().value();
}

bool Ipv4Cidr::Contains(const Ipv4Cidr& other) const {
  return other.prefix_len_ >= prefix_len_ && Contains(other.address_);
}

bool Ipv4Cidr::Overlaps(const Ipv4Cidr& other) const {
  return Contains(other.network()) || other.Contains(network());
}

Ipv4Address Ipv4Cidr::Nth(uint64_t n) const {
  if (n >= size()) {
    throw Error::Invalid("address #" + std::to_string(n) + " is outside " + Masked().ToString() +
                         " (" + std::to_string(size()) + " addresses)");
  }
  return Ipv4Address(network().value() + static_cast<uint32_t>(n));
}

std::string Ipv4Cidr::ToString() const {
  return address_.ToString() + "/" + std::to_string(prefix_len_);
}

// ---- Ipv4Allocator ----

Ipv4Allocator::Ipv4Allocator(Ipv4Cidr range, std::string state_path)
    : range_(range), state_path_(std::move(state_path)) {
  if (!range_.is_network()) {
    throw Error::Invalid("pod address range " + range_.ToString() +
                         " has host bits set (the network is " + range_.Masked().ToString() + ")");
  }
  if (range_.prefix_len() > 30) {
    throw Error::Invalid("pod address range " + range_.ToString() +
                         " is too small: it needs at least a /30 (network, gateway, one "
                         "address, broadcast)");
  }
  if (!state_path_.empty()) Load();
}

void Ipv4Allocator::CheckOwner(const std::string& owner) {
  if (owner.empty()) throw Error::Invalid("address owner must not be empty");
  for (char c : owner) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\0') {
      throw Error::Invalid("address owner \"" + owner + "\" must not contain whitespace");
    }
  }
}

bool Ipv4Allocator::Assignable(Ipv4Address a) const {
  return range_.Contains(a) && a != range_.network() && a != gateway() && a != range_.broadcast();
}

Ipv4Address Ipv4Allocator::Allocate(const std::string& owner) {
  CheckOwner(owner);
  std::lock_guard lock(mu_);
  if (auto it = by_owner_.find(owner); it != by_owner_.end()) return it->second;
  // The lowest free address: walk the held ones in order until a gap.
  uint32_t candidate = range_.network().value() + 2;
  const uint32_t last = range_.broadcast().value() - 1;
  for (auto it = by_address_.lower_bound(Ipv4Address(candidate));
       it != by_address_.end() && it->first.value() == candidate; ++it) {
    candidate++;
  }
  if (candidate > last) {
    throw Error::Unavailable("no free address left in " + range_.ToString() + " (" +
                             std::to_string(by_address_.size()) + " in use)");
  }
  Ipv4Address a(candidate);
  by_address_.emplace(a, owner);
  by_owner_.emplace(owner, a);
  try {
    Persist();
  } catch (...) {
    by_address_.erase(a);
    by_owner_.erase(owner);
    throw;
  }
  return a;
}

void Ipv4Allocator::Reserve(Ipv4Address address, const std::string& owner) {
  CheckOwner(owner);
  if (!Assignable(address)) {
    throw Error::Invalid("address " + address.ToString() + " is not assignable in " +
                         range_.ToString() + " (outside it, or its network, gateway or broadcast)");
  }
  std::lock_guard lock(mu_);
  if (auto it = by_address_.find(address); it != by_address_.end()) {
    if (it->second == owner) return;
    throw Error::Conflict("address " + address.ToString() + " is already held by " + it->second);
  }
  if (auto it = by_owner_.find(owner); it != by_owner_.end()) {
    throw Error::Conflict(owner + " already holds " + it->second.ToString());
  }
  by_address_.emplace(address, owner);
  by_owner_.emplace(owner, address);
  try {
    Persist();
  } catch (...) {
    by_address_.erase(address);
    by_owner_.erase(owner);
    throw;
  }
}

bool Ipv4Allocator::Release(const std::string& owner) {
  std::lock_guard lock(mu_);
  auto it = by_owner_.find(owner);
  if (it == by_owner_.end()) return false;
  Ipv4Address a = it->second;
  by_owner_.erase(it);
  by_address_.erase(a);
  try {
    Persist();
  } catch (...) {
    by_owner_.emplace(owner, a);
    by_address_.emplace(a, owner);
    throw;
  }
  return true;
}

std::optional<Ipv4Address> Ipv4Allocator::Lookup(const std::string& owner) const {
  std::lock_guard lock(mu_);
  auto it = by_owner_.find(owner);
  if (it == by_owner_.end()) return std::nullopt;
  return it->second;
}

std::map<Ipv4Address, std::string> Ipv4Allocator::Allocations() const {
  std::lock_guard lock(mu_);
  return by_address_;
}

size_t Ipv4Allocator::Available() const {
  std::lock_guard lock(mu_);
  return static_cast<size_t>(range_.size() - 3) - by_address_.size();
}

void Ipv4Allocator::Load() {
  if (::access(state_path_.c_str(), F_OK) < 0 && errno == ENOENT) return;
  std::ifstream in(state_path_);
  if (!in) throw ErrnoError(errno, "read IPAM state " + state_path_);
  int line_no = 0;
  for (std::string line; std::getline(in, line);) {
    line_no++;
    if (line.empty() || line[0] == '#') continue;
    auto where = [&] { return state_path_ + ":" + std::to_string(line_no) + ": "; };
    std::istringstream fields(line);
    std::string ip, owner, extra;
    fields >> ip >> owner >> extra;
    if (ip.empty() || owner.empty() || !extra.empty()) {
      throw Error::Invalid(where() + "expected \"<ip> <owner>\", got \"" + line + "\"");
    }
    auto a = Ipv4Address::TryParse(ip);
    if (!a) throw Error::Invalid(where() + "\"" + ip + "\" is not an IPv4 address");
    if (!Assignable(*a)) {
      throw Error::Invalid(where() + ip + " is not assignable in " + range_.ToString());
    }
    if (by_address_.count(*a) != 0) throw Error::Invalid(where() + ip + " is listed twice");
    if (by_owner_.count(owner) != 0) {
      throw Error::Invalid(where() + owner + " holds two addresses");
    }
    by_address_.emplace(*a, owner);
    by_owner_.emplace(owner, *a);
  }
}

void Ipv4Allocator::Persist() const {
  if (state_path_.empty()) return;
  std::string text = "# kin IPAM " + range_.ToString() + ": <ip> <owner>\n";
  for (const auto& [a, owner] : by_address_) text += a.ToString() + " " + owner + "\n";

  const std::string tmp = state_path_ + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw ErrnoError(errno, "write IPAM state " + tmp);
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw ErrnoError(err, "write IPAM state " + tmp);
    }
    done += static_cast<size_t>(n);
  }
  // The rename makes the switch atomic: a crash of kin serve leaves the old
  // or the new file. No fsync: what it adds is surviving the machine's
  // crash, which the pods holding these addresses do not survive either
  // (it cost more than the rest of an allocation).
  ::close(fd);
  if (::rename(tmp.c_str(), state_path_.c_str()) < 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw ErrnoError(err, "rename " + tmp + " to " + state_path_);
  }
}

}  // namespace kin::netstack
