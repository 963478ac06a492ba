// IPv4 addresses, CIDRs and the pod address allocator of one node.
//
// Ipv4Address and Ipv4Cidr are plain values. Parsing is strict (four decimal
// octets without leading zeros, a prefix length 0..32) and a failure is an
// Invalid kin::Error that names the bad value, and the field when given.
// An Ipv4Cidr keeps the address it was written with, so it also describes an
// interface address ("10.244.1.1/24"); network() / Masked() give the network.
//
// Ipv4Allocator hands out addresses of a node's pod CIDR: always the lowest
// free one, skipping the network address, the gateway (network + 1, which the
// node's bridge holds) and the broadcast address. An owner (a pod UID) holds
// at most one address: allocating again for it returns the same one. When
// given a state file it persists every change before returning (one
// "ip owner" line each, written to a temporary file and renamed over the old
// one) and reloads it on Open, so nothing is handed out twice across
// restarts. One process owns a state file; there is no cross-process lock.
//
// Thread-safety: the value types are plain values; Ipv4Allocator is
// thread-safe (an internal mutex).
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace kin::netstack {

class Ipv4Address {
 public:
  constexpr Ipv4Address() = default;
  constexpr explicit Ipv4Address(uint32_t host_order) : value_(host_order) {}
  // "10.244.1.5"; `field` (e.g. "spec.podCIDR") names the value in errors.
  static Ipv4Address Parse(std::string_view text, std::string_view field = {});
  static std::optional<Ipv4Address> TryParse(std::string_view text);

  constexpr uint32_t value() const { return value_; }  // host byte order
  uint32_t network_order() const;
  static Ipv4Address FromNetworkOrder(uint32_t be);
  std::string ToString() const;

  constexpr auto operator<=>(const Ipv4Address&) const = default;

 private:
  uint32_t value_ = 0;
};

class Ipv4Cidr {
 public:
  Ipv4Cidr() = default;
  // Throws Invalid when prefix_len > 32.
  Ipv4Cidr(Ipv4Address address, int prefix_len);
  // "10.244.1.0/24" or "10.244.1.1/24" (host bits kept).
  static Ipv4Cidr Parse(std::string_view text, std::string_view field = {});
  // Like Parse, but a network: host bits must be zero ("10.244.1.5/24" is
  // rejected, naming 10.244.1.0/24 as what was probably meant).
  static Ipv4Cidr ParseNetwork(std::string_view text, std::string_view field = {});

  Ipv4Address address() const { return address_; }
  int prefix_len() const { return prefix_len_; }
  uint32_t netmask() const;  // host order
  Ipv4Address network() const;
  Ipv4Address broadcast() const;  // the last address
  Ipv4Cidr Masked() const { return Ipv4Cidr(network(), prefix_len_); }
  bool is_network() const { return address_ == network(); }
  uint64_t size() const { return uint64_t{1} << (32 - prefix_len_); }

  bool Contains(Ipv4Address a) const;
  bool Contains(const Ipv4Cidr& other) const;  // every address of `other`
  bool Overlaps(const Ipv4Cidr& other) const;
  // network + n; OutOfRange (Invalid) when n >= size().
  Ipv4Address Nth(uint64_t n) const;

  std::string ToString() const;  // "10.244.1.0/24"
  auto operator<=>(const Ipv4Cidr&) const = default;

 private:
  Ipv4Address address_;
  int prefix_len_ = 0;
};

class Ipv4Allocator {
 public:
  // `range` must be a network of at least 4 addresses (/30 or larger).
  // With an empty `state_path` allocations live in memory only; otherwise
  // the file is loaded (missing: empty) and kept up to date. Throws Invalid
  // naming file and line for a malformed or out-of-range entry.
  Ipv4Allocator(Ipv4Cidr range, std::string state_path = "");

  const Ipv4Cidr& range() const { return range_; }
  Ipv4Address gateway() const { return range_.Nth(1); }

  // The owner's address: the one it holds, else the lowest free one.
  // Throws ServiceUnavailable when the range is exhausted. Owners are
  // non-empty and contain no whitespace.
  Ipv4Address Allocate(const std::string& owner);
  // Marks a specific address as held by `owner` (e.g. found in use at start).
  // Conflict when another owner holds it; Invalid when it is not assignable.
  void Reserve(Ipv4Address address, const std::string& owner);
  // Frees the owner's address; false when it held none.
  bool Release(const std::string& owner);

  std::optional<Ipv4Address> Lookup(const std::string& owner) const;
  std::map<Ipv4Address, std::string> Allocations() const;
  size_t Available() const;  // assignable addresses not held

 private:
  bool Assignable(Ipv4Address a) const;
  void Load();
  void Persist() const;  // caller holds mu_
  static void CheckOwner(const std::string& owner);

  const Ipv4Cidr range_;
  const std::string state_path_;
  mutable std::mutex mu_;
  std::map<Ipv4Address, std::string> by_address_;
  std::map<std::string, Ipv4Address> by_owner_;
};

}  // namespace kin::netstack
