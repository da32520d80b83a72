// The RFC 9110 / 9112 grammar pieces shoal checks itself, beside llhttp (worker/http_syntax.hpp).
#include <gtest/gtest.h>

#include "worker/http_syntax.hpp"

namespace shoal {
namespace {

TEST(HttpSyntax, TokensAreTcharsOnly) {
  EXPECT_TRUE(is_token("Content-Length"));
  EXPECT_TRUE(is_token("x!#$%&'*+-.^_`|~9"));
  EXPECT_FALSE(is_token(""));
  EXPECT_FALSE(is_token("Host "));
  EXPECT_FALSE(is_token("a:b"));
  EXPECT_FALSE(is_token("a\tb"));
  EXPECT_FALSE(is_token("caf\xc3\xa9"));
}

TEST(HttpSyntax, AuthorityIsUriHostAndAnOptionalPort) {
  for (const char* good : {"", "example.com", "example.com:8080", "127.0.0.1", "127.0.0.1:80", "[::1]", "[::1]:443",
                           "[v1.x]", "a-b_c~d", "%41b", "host:", "xn--bcher-kva.example"})
    EXPECT_TRUE(is_authority(good)) << good;
  for (const char* bad : {"a b", "a/b", "a@b", "host:80x", "[::1", "[]", "[::1]x", "%4", "%zz", "a\tb", "h:1:2",
                          "user@host", "a\"b"})
    EXPECT_FALSE(is_authority(bad)) << bad;
}

TEST(HttpSyntax, AbsoluteFormPrefixIsHttpOrHttpsInAnyCase) {
  EXPECT_EQ(absolute_form_prefix("http://h/x"), 7u);
  EXPECT_EQ(absolute_form_prefix("HTTPS://h"), 8u);
  EXPECT_EQ(absolute_form_prefix("/x"), 0u);
  EXPECT_EQ(absolute_form_prefix("ftp://h/x"), 0u);
  EXPECT_EQ(absolute_form_prefix("http:/x"), 0u);
}

TEST(HttpSyntax, AnUnknownMethodIsATokenThenASpace) {
  EXPECT_TRUE(starts_with_token_and_space("FOO / HTTP/1.1\r\n"));
  EXPECT_TRUE(starts_with_token_and_space("\r\nBREW /pot HTTP/1.1\r\n"));
  EXPECT_FALSE(starts_with_token_and_space("\x16\x03\x01\x02"));  // a TLS handshake
  EXPECT_FALSE(starts_with_token_and_space(" / HTTP/1.1"));
  EXPECT_FALSE(starts_with_token_and_space("FOO"));
  EXPECT_FALSE(starts_with_token_and_space("F{O / HTTP/1.1"));
}

TEST(HttpSyntax, OnlyChunkedIsTheOneTransferCodingShoalDecodes) {
  EXPECT_TRUE(only_chunked("chunked"));
  EXPECT_TRUE(only_chunked(" CHUNKED\t"));
  EXPECT_FALSE(only_chunked("gzip, chunked"));
  EXPECT_FALSE(only_chunked("gzip"));
  EXPECT_FALSE(only_chunked("chunked;q=1"));
  EXPECT_FALSE(only_chunked(""));
}

TEST(HttpSyntax, ChunkExtensionsAllowBadWhitespaceTokensAndQuotedStrings) {
  for (const char* good : {"", ";a", ";a=1", ";a=1;b", " ; a = 1\t;\tb", ";a=\"x y\";b=2", ";a=\"q \\\" ; q\"",
                           ";a=\"\";b"})
    EXPECT_TRUE(is_chunk_extensions(good)) << good;
  for (const char* bad : {" ", ";", "a", ";a=", ";a b", ";a=\"open", ";a=b c", ";a ", ";=1", ";a=\"\x01\"", "; a=1 "})
    EXPECT_FALSE(is_chunk_extensions(bad)) << bad;
}

}  // namespace
}  // namespace shoal
