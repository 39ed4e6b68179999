#include "runner/http/address_policy.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>

namespace nanobatch::http {
namespace {

namespace ip = boost::asio::ip;

// IPv6 forms that stand for an IPv4 address (IPv4-mapped ::ffff:a.b.c.d, and the NAT64
// well-known prefix 64:ff9b::/96, which a NAT64 gateway turns into a.b.c.d) are judged as it.
ip::address Unwrap(const ip::address& address) {
  if (!address.is_v6()) return address;
  const ip::address_v6 v6 = address.to_v6();
  if (v6.is_v4_mapped()) return ip::make_address_v4(ip::v4_mapped, v6);
  const ip::address_v6::bytes_type bytes = v6.to_bytes();
  static constexpr std::array<unsigned char, 12> kNat64 = {0x00, 0x64, 0xff, 0x9b, 0, 0,
                                                           0,    0,    0,    0,    0, 0};
  if (std::equal(kNat64.begin(), kNat64.end(), bytes.begin())) {
    return ip::address_v4(ip::address_v4::bytes_type{bytes[12], bytes[13], bytes[14], bytes[15]});
  }
  return address;
}

bool InV4(std::uint32_t address, std::uint32_t base, unsigned prefix) {
  const std::uint32_t mask = prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix);
  return (address & mask) == base;
}

AddressClass ClassifyV4(const ip::address_v4& v4) {
  const std::uint32_t a = v4.to_uint();
  if (a == 0xA9FEA9FE) return AddressClass::kMetadata;  // 169.254.169.254
  if (InV4(a, 0x00000000, 8)) return AddressClass::kUnspecified;
  if (InV4(a, 0x7F000000, 8)) return AddressClass::kLoopback;
  if (InV4(a, 0x0A000000, 8) || InV4(a, 0xAC100000, 12) || InV4(a, 0xC0A80000, 16)) {
    return AddressClass::kPrivate;
  }
  if (InV4(a, 0x64400000, 10)) return AddressClass::kShared;
  if (InV4(a, 0xA9FE0000, 16)) return AddressClass::kLinkLocal;
  if (InV4(a, 0xE0000000, 4)) return AddressClass::kMulticast;
  if (InV4(a, 0xC0000000, 24) ||  // IETF protocol assignments
      InV4(a, 0xC0000200, 24) ||  // TEST-NET-1
      InV4(a, 0xC6120000, 15) ||  // benchmarking
      InV4(a, 0xC6336400, 24) ||  // TEST-NET-2
      InV4(a, 0xCB007100, 24) ||  // TEST-NET-3
      InV4(a, 0xF0000000, 4)) {   // reserved, and the broadcast address
    return AddressClass::kReserved;
  }
  return AddressClass::kPublic;
}

AddressClass ClassifyV6(const ip::address_v6& v6) {
  const ip::address_v6::bytes_type b = v6.to_bytes();
  if (v6.is_unspecified()) return AddressClass::kUnspecified;
  if (v6.is_loopback()) return AddressClass::kLoopback;
  // fd00:ec2::254, the metadata service's IPv6 address on AWS.
  static constexpr ip::address_v6::bytes_type kAwsMetadata = {
      0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54};
  if (b == kAwsMetadata) return AddressClass::kMetadata;
  if (b[0] == 0xff) return AddressClass::kMulticast;
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return AddressClass::kLinkLocal;  // fe80::/10
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return AddressClass::kPrivate;    // fec0::/10
  if ((b[0] & 0xfe) == 0xfc) return AddressClass::kPrivate;                    // fc00::/7
  // 64:ff9b:1::/48, NAT64 for local use.
  if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && b[4] == 0 && b[5] == 1) {
    return AddressClass::kPrivate;
  }
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) {
    return AddressClass::kReserved;  // 2001:db8::/32, documentation
  }
  bool leading_zeros = true;  // ::/96 (IPv4-compatible, deprecated), other than :: and ::1
  for (int i = 0; i < 12; ++i) leading_zeros = leading_zeros && b[i] == 0;
  if (leading_zeros) return AddressClass::kReserved;
  return AddressClass::kPublic;
}

bool PrefixMatches(const unsigned char* address, const unsigned char* base, unsigned prefix) {
  const unsigned whole = prefix / 8;
  for (unsigned i = 0; i < whole; ++i) {
    if (address[i] != base[i]) return false;
  }
  const unsigned rest = prefix % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<unsigned char>(0xff << (8 - rest));
  return (address[whole] & mask) == (base[whole] & mask);
}

bool HasHostBits(const ip::address& base, unsigned prefix) {
  auto any_set = [prefix](const auto& bytes) {
    for (unsigned i = prefix; i < bytes.size() * 8; ++i) {
      if ((bytes[i / 8] & (0x80 >> (i % 8))) != 0) return true;
    }
    return false;
  };
  return base.is_v4() ? any_set(base.to_v4().to_bytes()) : any_set(base.to_v6().to_bytes());
}

}  // namespace

AddressClass Classify(const ip::address& address) {
  const ip::address unwrapped = Unwrap(address);
  return unwrapped.is_v4() ? ClassifyV4(unwrapped.to_v4()) : ClassifyV6(unwrapped.to_v6());
}

std::string_view Describe(AddressClass kind) {
  switch (kind) {
    case AddressClass::kPublic:
      return "a public address";
    case AddressClass::kLoopback:
      return "a loopback address";
    case AddressClass::kPrivate:
      return "a private address";
    case AddressClass::kShared:
      return "a shared (carrier-grade NAT) address";
    case AddressClass::kLinkLocal:
      return "a link-local address";
    case AddressClass::kMetadata:
      return "the cloud metadata service's address";
    case AddressClass::kUnspecified:
      return "an unspecified address";
    case AddressClass::kMulticast:
      return "a multicast address";
    case AddressClass::kReserved:
      return "a reserved address";
  }
  return "an unknown kind of address";
}

std::optional<Network> Network::Parse(std::string_view text, std::string* why) {
  auto fail = [&](const std::string& reason) -> std::optional<Network> {
    if (why != nullptr) *why = "\"" + std::string(text.substr(0, 60)) + "\" " + reason;
    return std::nullopt;
  };
  const auto slash = text.find('/');
  boost::system::error_code error;
  const ip::address base = ip::make_address(std::string(text.substr(0, slash)), error);
  if (error) return fail("is not an IP address or CIDR block (such as 127.0.0.0/8 or ::1/128)");
  const unsigned bits = base.is_v4() ? 32 : 128;
  unsigned prefix = bits;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    const auto [end, parse_error] =
        std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
    if (digits.empty() || parse_error != std::errc() || end != digits.data() + digits.size() ||
        prefix > bits) {
      return fail("has a prefix length that is not 0 to " + std::to_string(bits));
    }
  }
  if (Unwrap(base) != base) {  // ::ffff:a.b.c.d or 64:ff9b::a.b.c.d
    return fail("is an IPv6 form of an IPv4 address; write the IPv4 block (such as 10.0.0.0/8)");
  }
  // Host bits set ("10.1.2.3/8") is most likely a typo for a narrower block: refused, not guessed.
  if (HasHostBits(base, prefix)) {
    return fail(
        "has bits set after its prefix (write the block's first address, such as "
        "10.0.0.0/8)");
  }
  Network network{base, prefix};
  return network;
}

bool Network::Contains(const ip::address& address) const {
  const ip::address candidate = Unwrap(address);
  if (candidate.is_v4() != base.is_v4()) return false;
  if (candidate.is_v4()) {
    return PrefixMatches(candidate.to_v4().to_bytes().data(), base.to_v4().to_bytes().data(),
                         prefix);
  }
  return PrefixMatches(candidate.to_v6().to_bytes().data(), base.to_v6().to_bytes().data(), prefix);
}

std::string Network::ToString() const { return base.to_string() + "/" + std::to_string(prefix); }

std::optional<std::string> AddressPolicy::Refusal(const ip::address& address) const {
  const AddressClass kind = Classify(address);
  if (kind == AddressClass::kPublic) return std::nullopt;
  for (const Network& network : allowed_) {
    if (network.Contains(address)) return std::nullopt;
  }
  return address.to_string() + " is " + std::string(Describe(kind)) +
         "; downloads go only to public addresses unless download.allowed_networks (or "
         "--allow-download-network) contains it";
}

}  // namespace nanobatch::http
