#pragma once
// AddressPolicy: which IP addresses a download may connect to, checked on the addresses a host
// name resolved to, not on the name (server-side request forgery by address).
//
// Image URLs come from the API's answers, and an allowed host name can resolve to anything: a
// DNS record pointing file.example.com at 127.0.0.1, 10.0.0.5 or the cloud metadata service
// (169.254.169.254) would otherwise turn nanobatch into a proxy into the machine's own network.
// So an address that is not public (loopback, private, shared, link-local and metadata,
// unspecified, multicast, reserved; IPv4-mapped and NAT64 IPv6 forms are judged by the IPv4
// address inside) is refused unless a network the user allowed contains it
// (download.allowed_networks, --allow-download-network). The client connects only to the
// addresses that passed, from the same resolution: no second lookup can swap them.
//
// Example:
//   AddressPolicy policy({*Network::Parse("127.0.0.0/8")});
//   policy.Refusal(net::ip::make_address("10.1.2.3"));   // "10.1.2.3 is a private address..."
//   policy.Refusal(net::ip::make_address("127.0.0.1"));  // nullopt: allowed

#include <boost/asio/ip/address.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace nanobatch::http {

enum class AddressClass {
  kPublic,
  kLoopback,     // 127.0.0.0/8, ::1
  kPrivate,      // 10/8, 172.16/12, 192.168/16, fc00::/7, fec0::/10
  kShared,       // 100.64.0.0/10 (carrier-grade NAT)
  kLinkLocal,    // 169.254.0.0/16, fe80::/10
  kMetadata,     // 169.254.169.254, fd00:ec2::254: cloud instance metadata (credentials)
  kUnspecified,  // 0.0.0.0/8, ::
  kMulticast,    // 224.0.0.0/4, ff00::/8
  kReserved,     // documentation, benchmarking, IETF, 240/4, broadcast, ::/96 IPv4-compatible
};

AddressClass Classify(const boost::asio::ip::address& address);
// "a loopback address", "a private address", ... for messages.
std::string_view Describe(AddressClass kind);

// An address block in CIDR form: "127.0.0.0/8", "::1/128", "10.1.2.3" (one address).
struct Network {
  boost::asio::ip::address base;  // with the host bits cleared
  unsigned prefix = 0;

  // nullopt (and `why`) for anything else: a bad address, a prefix out of range, host bits set.
  static std::optional<Network> Parse(std::string_view text, std::string* why = nullptr);
  bool Contains(const boost::asio::ip::address& address) const;
  std::string ToString() const;
};

class AddressPolicy {
 public:
  AddressPolicy() = default;
  explicit AddressPolicy(std::vector<Network> allowed) : allowed_(std::move(allowed)) {}

  // Why `address` must not be connected to, naming it, its class and the setting that would
  // allow it; nullopt when it may be.
  std::optional<std::string> Refusal(const boost::asio::ip::address& address) const;

 private:
  std::vector<Network> allowed_;
};

}  // namespace nanobatch::http
