#include "runner/http/address_policy.h"

#include <doctest/doctest.h>

namespace nanobatch::http {
namespace {

namespace ip = boost::asio::ip;

AddressClass Of(const char* text) { return Classify(ip::make_address(text)); }

TEST_CASE("address policy: every non-public kind of address is recognised, in both families") {
  CHECK(Of("93.184.216.34") == AddressClass::kPublic);
  CHECK(Of("2606:2800:220:1:248:1893:25c8:1946") == AddressClass::kPublic);
  CHECK(Of("127.0.0.1") == AddressClass::kLoopback);
  CHECK(Of("127.255.255.254") == AddressClass::kLoopback);
  CHECK(Of("::1") == AddressClass::kLoopback);
  CHECK(Of("10.0.0.1") == AddressClass::kPrivate);
  CHECK(Of("172.16.0.1") == AddressClass::kPrivate);
  CHECK(Of("172.31.255.255") == AddressClass::kPrivate);
  CHECK(Of("172.32.0.1") == AddressClass::kPublic);  // just outside 172.16.0.0/12
  CHECK(Of("192.168.1.1") == AddressClass::kPrivate);
  CHECK(Of("fd12:3456::1") == AddressClass::kPrivate);
  CHECK(Of("fc00::1") == AddressClass::kPrivate);
  CHECK(Of("100.64.0.1") == AddressClass::kShared);
  CHECK(Of("100.128.0.1") == AddressClass::kPublic);
  CHECK(Of("169.254.1.1") == AddressClass::kLinkLocal);
  CHECK(Of("fe80::1") == AddressClass::kLinkLocal);
  CHECK(Of("169.254.169.254") == AddressClass::kMetadata);
  CHECK(Of("fd00:ec2::254") == AddressClass::kMetadata);
  CHECK(Of("0.0.0.0") == AddressClass::kUnspecified);
  CHECK(Of("0.1.2.3") == AddressClass::kUnspecified);
  CHECK(Of("::") == AddressClass::kUnspecified);
  CHECK(Of("224.0.0.1") == AddressClass::kMulticast);
  CHECK(Of("ff02::1") == AddressClass::kMulticast);
  CHECK(Of("255.255.255.255") == AddressClass::kReserved);
  CHECK(Of("192.0.2.1") == AddressClass::kReserved);
  CHECK(Of("198.18.0.1") == AddressClass::kReserved);
  CHECK(Of("2001:db8::1") == AddressClass::kReserved);
  CHECK(Of("::7f00:1") == AddressClass::kReserved);  // IPv4-compatible, deprecated
}

TEST_CASE("address policy: IPv6 spellings of an IPv4 address are judged as that address") {
  CHECK(Of("::ffff:127.0.0.1") == AddressClass::kLoopback);
  CHECK(Of("::ffff:169.254.169.254") == AddressClass::kMetadata);
  CHECK(Of("::ffff:10.1.2.3") == AddressClass::kPrivate);
  CHECK(Of("::ffff:8.8.8.8") == AddressClass::kPublic);
  CHECK(Of("64:ff9b::7f00:1") == AddressClass::kLoopback);  // NAT64 of 127.0.0.1
  CHECK(Of("64:ff9b::a9fe:a9fe") == AddressClass::kMetadata);
  CHECK(Of("64:ff9b:1::1") == AddressClass::kPrivate);
}

TEST_CASE("address policy: networks parse as CIDR blocks and refuse what is ambiguous") {
  auto loopback = Network::Parse("127.0.0.0/8");
  REQUIRE(loopback.has_value());
  CHECK(loopback->Contains(ip::make_address("127.9.9.9")));
  CHECK(loopback->Contains(ip::make_address("::ffff:127.0.0.1")));  // the mapped form too
  CHECK_FALSE(loopback->Contains(ip::make_address("128.0.0.1")));
  CHECK_FALSE(loopback->Contains(ip::make_address("::1")));
  CHECK(loopback->ToString() == "127.0.0.0/8");

  auto one = Network::Parse("10.1.2.3");
  REQUIRE(one.has_value());
  CHECK(one->prefix == 32);
  CHECK(one->Contains(ip::make_address("10.1.2.3")));
  CHECK_FALSE(one->Contains(ip::make_address("10.1.2.4")));

  auto v6 = Network::Parse("fd00::/8");
  REQUIRE(v6.has_value());
  CHECK(v6->Contains(ip::make_address("fd12::1")));
  CHECK_FALSE(v6->Contains(ip::make_address("fc00::1")));
  auto odd = Network::Parse("10.64.0.0/10");
  REQUIRE(odd.has_value());
  CHECK(odd->Contains(ip::make_address("10.127.255.255")));
  CHECK_FALSE(odd->Contains(ip::make_address("10.128.0.0")));
  CHECK(Network::Parse("0.0.0.0/0")->Contains(ip::make_address("8.8.8.8")));

  std::string why;
  CHECK_FALSE(Network::Parse("10.1.2.3/8", &why).has_value());
  CHECK(why.find("after its prefix") != std::string::npos);
  for (const char* bad : {"localhost", "10.0.0.0/33", "::1/129", "10.0.0.0/", "10.0.0.0/8x",
                          "10.0.0.0/-1", "", "/8", "::ffff:10.0.0.0/104"}) {
    CAPTURE(bad);
    CHECK_FALSE(Network::Parse(bad, &why).has_value());
    CHECK_FALSE(why.empty());
  }
}

TEST_CASE("address policy: public passes, the rest only inside an allowed network") {
  AddressPolicy strict;
  CHECK_FALSE(strict.Refusal(ip::make_address("93.184.216.34")).has_value());
  auto refusal = strict.Refusal(ip::make_address("169.254.169.254"));
  REQUIRE(refusal.has_value());
  CHECK(refusal->find("169.254.169.254") != std::string::npos);
  CHECK(refusal->find("metadata") != std::string::npos);
  CHECK(refusal->find("download.allowed_networks") != std::string::npos);
  CHECK(strict.Refusal(ip::make_address("127.0.0.1")).has_value());
  CHECK(strict.Refusal(ip::make_address("::ffff:127.0.0.1")).has_value());

  AddressPolicy loopback_allowed({*Network::Parse("127.0.0.0/8"), *Network::Parse("::1")});
  CHECK_FALSE(loopback_allowed.Refusal(ip::make_address("127.0.0.1")).has_value());
  CHECK_FALSE(loopback_allowed.Refusal(ip::make_address("::1")).has_value());
  CHECK_FALSE(loopback_allowed.Refusal(ip::make_address("::ffff:127.0.0.1")).has_value());
  // Allowing loopback allows nothing else.
  CHECK(loopback_allowed.Refusal(ip::make_address("10.0.0.1")).has_value());
  CHECK(loopback_allowed.Refusal(ip::make_address("169.254.169.254")).has_value());
}

}  // namespace
}  // namespace nanobatch::http
