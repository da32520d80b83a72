// The PROXY protocol parser (worker/proxy_protocol.hpp), rule by rule of haproxy's
// proxy-protocol.txt: the spec's examples, and its edge cases.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>

#include "common/net.hpp"
#include "worker/proxy_protocol.hpp"

namespace shoal {
namespace {

using Status = ProxyHeader::Status;

std::string address_of(const ProxyHeader& h) {
  return format_sockaddr(reinterpret_cast<const sockaddr*>(&h.source), h.source_length);
}

const std::string kSignature("\r\n\r\n\0\r\nQUIT\n", 12);

// A v2 header: version/command byte, family/protocol byte, then the address block.
std::string v2(unsigned char command, unsigned char family, const std::string& block) {
  std::string h = kSignature;
  h += static_cast<char>(command);
  h += static_cast<char>(family);
  h += static_cast<char>(block.size() >> 8);
  h += static_cast<char>(block.size() & 0xff);
  return h + block;
}

std::string ipv4_block(const char* src, const char* dst, uint16_t sport, uint16_t dport) {
  std::string b(12, '\0');
  inet_pton(AF_INET, src, &b[0]);
  inet_pton(AF_INET, dst, &b[4]);
  b[8] = static_cast<char>(sport >> 8), b[9] = static_cast<char>(sport & 0xff);
  b[10] = static_cast<char>(dport >> 8), b[11] = static_cast<char>(dport & 0xff);
  return b;
}

TEST(ProxyProtocol, V1Tcp4FromTheSpec) {
  std::string in = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n";
  auto h = parse_proxy_header(in, ProxyProtocol::V1);
  ASSERT_EQ(h.status, Status::Done) << h.why;
  EXPECT_EQ(h.length, 47u);
  EXPECT_TRUE(h.has_address);
  EXPECT_EQ(address_of(h), "192.168.0.1:56324");
}

TEST(ProxyProtocol, V1Tcp6AndUnknown) {
  auto h = parse_proxy_header("PROXY TCP6 2001:db8::1 2001:db8::2 4711 80\r\n", ProxyProtocol::Any);
  ASSERT_EQ(h.status, Status::Done) << h.why;
  EXPECT_EQ(address_of(h), "[2001:db8::1]:4711");
  // UNKNOWN: anything up to the CRLF is ignored, and the socket's own address is kept.
  h = parse_proxy_header("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", ProxyProtocol::V1);
  ASSERT_EQ(h.status, Status::Done);
  EXPECT_FALSE(h.has_address);
  h = parse_proxy_header("PROXY UNKNOWN\r\n", ProxyProtocol::V1);
  EXPECT_EQ(h.status, Status::Done);
}

TEST(ProxyProtocol, V1SplitAcrossReadsNeedsMoreUntilItsCrlf) {
  std::string whole = "PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n";
  for (size_t cut = 0; cut < whole.size(); ++cut)
    EXPECT_EQ(parse_proxy_header(whole.substr(0, cut), ProxyProtocol::V1).status, Status::NeedMore) << cut;
  EXPECT_EQ(parse_proxy_header(whole, ProxyProtocol::V1).status, Status::Done);
}

TEST(ProxyProtocol, V1IsAtMost107BytesWithItsCrlf) {
  std::string longest = "PROXY UNKNOWN " + std::string(107 - 16, 'x') + "\r\n";
  ASSERT_EQ(longest.size(), 107u);
  EXPECT_EQ(parse_proxy_header(longest, ProxyProtocol::V1).status, Status::Done);
  std::string over = "PROXY UNKNOWN " + std::string(107 - 15, 'x') + "\r\n";
  EXPECT_EQ(parse_proxy_header(over, ProxyProtocol::V1).status, Status::Invalid);
  // No CRLF within 107 bytes: refused before any more is read.
  EXPECT_EQ(parse_proxy_header("PROXY TCP4 " + std::string(200, '1'), ProxyProtocol::V1).status, Status::Invalid);
}

TEST(ProxyProtocol, V1MalformedLinesAreRefused) {
  for (const char* bad : {"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
                          "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "PROXY TCP4 ::1 ::1 1 2\r\n",
                          "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
                          "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
                          "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
                          "GET / HTTP/1.1\r\n"})
    EXPECT_EQ(parse_proxy_header(bad, ProxyProtocol::V1).status, Status::Invalid) << bad;
}

TEST(ProxyProtocol, V2ProxyTcp4AndTcp6) {
  auto h = parse_proxy_header(v2(0x21, 0x11, ipv4_block("203.0.113.7", "10.0.0.1", 51000, 80)) + "GET",
                              ProxyProtocol::V2);
  ASSERT_EQ(h.status, Status::Done) << h.why;
  EXPECT_EQ(h.length, 28u);
  EXPECT_EQ(address_of(h), "203.0.113.7:51000");
  std::string block(36, '\0');
  inet_pton(AF_INET6, "2001:db8::7", &block[0]);
  inet_pton(AF_INET6, "2001:db8::1", &block[16]);
  block[32] = 0x12, block[33] = 0x67;  // port 4711
  h = parse_proxy_header(v2(0x21, 0x21, block), ProxyProtocol::Any);
  ASSERT_EQ(h.status, Status::Done) << h.why;
  EXPECT_EQ(address_of(h), "[2001:db8::7]:4711");
}

TEST(ProxyProtocol, V2LocalAndUnspecKeepTheSocketsAddress) {
  auto h = parse_proxy_header(v2(0x20, 0x00, ""), ProxyProtocol::V2);  // a health check
  ASSERT_EQ(h.status, Status::Done);
  EXPECT_FALSE(h.has_address);
  EXPECT_EQ(h.length, 16u);
  // LOCAL with an address block: the block is skipped, the address not used.
  h = parse_proxy_header(v2(0x20, 0x11, ipv4_block("1.2.3.4", "5.6.7.8", 1, 2)), ProxyProtocol::V2);
  EXPECT_EQ(h.status, Status::Done);
  EXPECT_FALSE(h.has_address);
  h = parse_proxy_header(v2(0x21, 0x00, ""), ProxyProtocol::V2);
  EXPECT_EQ(h.status, Status::Done);
  EXPECT_FALSE(h.has_address);
}

TEST(ProxyProtocol, V2TlvsAreSkipped) {
  std::string block = ipv4_block("198.51.100.2", "10.0.0.1", 1234, 443);
  block += std::string("\x04\x00\x04", 3) + "abcd";              // PP2_TYPE_NOOP
  block += std::string("\x05\x00\x03", 3) + "id1";               // PP2_TYPE_UNIQUE_ID
  auto h = parse_proxy_header(v2(0x21, 0x11, block) + "GET / HTTP/1.1\r\n", ProxyProtocol::V2);
  ASSERT_EQ(h.status, Status::Done) << h.why;
  EXPECT_EQ(h.length, 16 + block.size());
  EXPECT_EQ(address_of(h), "198.51.100.2:1234");
}

TEST(ProxyProtocol, V2TruncatedNeedsMoreAndOverLongIsRefused) {
  std::string whole = v2(0x21, 0x11, ipv4_block("1.2.3.4", "5.6.7.8", 1, 2));
  for (size_t cut = 0; cut < whole.size(); ++cut)
    EXPECT_EQ(parse_proxy_header(whole.substr(0, cut), ProxyProtocol::V2).status, Status::NeedMore) << cut;
  std::string huge = kSignature + std::string("\x21\x11\xff\xff", 4);
  EXPECT_EQ(parse_proxy_header(huge, ProxyProtocol::V2).status, Status::Invalid);
  std::string limit = v2(0x21, 0x11, ipv4_block("1.2.3.4", "5.6.7.8", 1, 2) + std::string(1024 - 12, '\0'));
  EXPECT_EQ(parse_proxy_header(limit, ProxyProtocol::V2).status, Status::Done);
}

TEST(ProxyProtocol, V2MalformedHeadersAreRefused) {
  EXPECT_EQ(parse_proxy_header(v2(0x11, 0x11, ipv4_block("1.2.3.4", "5.6.7.8", 1, 2)), ProxyProtocol::V2).status,
            Status::Invalid);  // version 1 in a v2 header
  EXPECT_EQ(parse_proxy_header(v2(0x22, 0x11, ipv4_block("1.2.3.4", "5.6.7.8", 1, 2)), ProxyProtocol::V2).status,
            Status::Invalid);  // command 2
  EXPECT_EQ(parse_proxy_header(v2(0x21, 0x11, "short"), ProxyProtocol::V2).status, Status::Invalid);
  EXPECT_EQ(parse_proxy_header(v2(0x21, 0x41, ipv4_block("1.2.3.4", "5.6.7.8", 1, 2)), ProxyProtocol::V2).status,
            Status::Invalid);  // family 4
  std::string bad_signature = v2(0x21, 0x11, ipv4_block("1.2.3.4", "5.6.7.8", 1, 2));
  bad_signature[5] = 'X';
  EXPECT_EQ(parse_proxy_header(bad_signature, ProxyProtocol::V2).status, Status::Invalid);
}

TEST(ProxyProtocol, EachModeAcceptsOnlyItsVersions) {
  std::string one = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
  std::string two = v2(0x21, 0x11, ipv4_block("1.2.3.4", "5.6.7.8", 1, 2));
  EXPECT_EQ(parse_proxy_header(one, ProxyProtocol::V2).status, Status::Invalid);
  EXPECT_EQ(parse_proxy_header(two, ProxyProtocol::V1).status, Status::Invalid);
  EXPECT_EQ(parse_proxy_header(one, ProxyProtocol::Any).status, Status::Done);
  EXPECT_EQ(parse_proxy_header(two, ProxyProtocol::Any).status, Status::Done);
  // Garbage, or a request with no header at all: refused at its first byte that cannot begin one.
  EXPECT_EQ(parse_proxy_header("GET / HTTP/1.1\r\n", ProxyProtocol::Any).status, Status::Invalid);
  EXPECT_EQ(parse_proxy_header("\r\n\r\nX", ProxyProtocol::Any).status, Status::Invalid);
  EXPECT_EQ(parse_proxy_header("", ProxyProtocol::Any).status, Status::NeedMore);
}

TEST(Cidr, ParsesNetworksAndMatchesAddresses) {
  auto net = Cidr::parse("10.0.0.0/8");
  ASSERT_TRUE(net);
  unsigned char a[16];
  inet_pton(AF_INET, "10.200.3.4", a);
  EXPECT_TRUE(net->contains(AF_INET, a));
  inet_pton(AF_INET, "11.0.0.1", a);
  EXPECT_FALSE(net->contains(AF_INET, a));
  inet_pton(AF_INET6, "::ffff:10.1.2.3", a);
  EXPECT_TRUE(net->contains(AF_INET6, a));  // IPv4-mapped
  auto v6 = Cidr::parse("2001:db8::/33");
  ASSERT_TRUE(v6);
  inet_pton(AF_INET6, "2001:db8:7fff::1", a);
  EXPECT_TRUE(v6->contains(AF_INET6, a));
  inet_pton(AF_INET6, "2001:db8:8000::1", a);
  EXPECT_FALSE(v6->contains(AF_INET6, a));
  auto one = Cidr::parse("127.0.0.1");
  ASSERT_TRUE(one);
  EXPECT_EQ(one->prefix, 32);
  for (const char* bad : {"10.0.0.0/33", "10.0.0/8", "host/8", "::/129", "10.0.0.0/", "10.0.0.0/-1"})
    EXPECT_FALSE(Cidr::parse(bad)) << bad;
}

}  // namespace
}  // namespace shoal
