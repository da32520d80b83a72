// The pieces of RFC 9110 / RFC 9112 grammar that llhttp does not check for a server, as pure
// functions over bytes (tests/http_syntax_test.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "common/net.hpp"

namespace shoal {

// The same n bytes. For the short strings a request is routed by (a path, a Host value), without
// a call to memcmp: two loads that may overlap cover 4 to 16 bytes.
inline bool equal_bytes(const char* a, const char* b, size_t n) {
  auto equal_words = [&](auto word) {
    decltype(word) x, y, x_end, y_end;
    memcpy(&x, a, sizeof x), memcpy(&y, b, sizeof y);
    memcpy(&x_end, a + n - sizeof x, sizeof x), memcpy(&y_end, b + n - sizeof y, sizeof y);
    return ((x ^ y) | (x_end ^ y_end)) == 0;
  };
  if (n >= 8 && n <= 16) return equal_words(uint64_t{});
  if (n >= 4 && n < 8) return equal_words(uint32_t{});
  return memcmp(a, b, n) == 0;
}
inline bool equal_bytes(std::string_view a, std::string_view b) {
  return a.size() == b.size() && equal_bytes(a.data(), b.data(), a.size());
}

// Without the OWS (SP and HTAB) around it (RFC 9110 5.6.3).
std::string_view trim_ows(std::string_view text);

// token = 1*tchar (RFC 9110 5.6.2).
bool is_token(std::string_view text);

// Host = uri-host [ ":" port ] (RFC 9110 7.2, RFC 3986 3.2.2): a reg-name (unreserved,
// pct-encoded, sub-delims), an IPv4 address (a reg-name's characters), or an IP literal in
// brackets. Empty is valid (a target without an authority).
bool is_authority(std::string_view text);

// For an absolute-form target, "http://" or "https://" in any case: how many bytes the scheme
// and "://" take. 0 for anything else.
size_t absolute_form_prefix(std::string_view target);

// Starts with a token and then SP: a request line whose method llhttp did not know.
bool starts_with_token_and_space(std::string_view bytes);

// A Transfer-Encoding value that names only "chunked" (any case, with OWS around it).
bool only_chunked(std::string_view value);

// chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ) (RFC 9112 7.1.1),
// with chunk-ext-val a token or a quoted-string: what follows a chunk's size on its line.
bool is_chunk_extensions(std::string_view text);

// The client behind trusted proxies: the hops of Forwarded's for= (RFC 7239), or else of
// X-Forwarded-For, walked from the right; the first address not in `trusted` is the client's
// (the left-most, which a client can forge, is believed only when every hop after it is
// trusted). Written into out as an address ("192.0.2.60", "2001:db8::17"). Empty when neither
// header is there, or a hop that had to be read is not an address ("unknown", "_hidden",
// garbage): the peer's own address then stands.
std::string_view forwarded_client(std::string_view forwarded, std::string_view x_forwarded_for,
                                  const std::vector<Cidr>& trusted, char (&out)[46]);

}  // namespace shoal
