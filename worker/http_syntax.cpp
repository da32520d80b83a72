#include "worker/http_syntax.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <string>

namespace shoal {
namespace {

constexpr std::array<bool, 256> table(std::string_view extra, bool alnum) {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c)
    t[c] = alnum && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
  for (char c : extra) t[static_cast<unsigned char>(c)] = true;
  return t;
}

constexpr auto kTchar = table("!#$%&'*+-.^_`|~", true);
// unreserved and sub-delims; '%' starts a pct-encoded triple, checked apart.
constexpr auto kRegName = table("-._~!$&'()*+,;=", true);
constexpr auto kIpLiteral = table(":.-._~!$&'()*+,;=", true);  // IPv6address, IPvFuture

bool in(const std::array<bool, 256>& t, char c) { return t[static_cast<unsigned char>(c)]; }

bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

bool is_port(std::string_view text) {
  for (char c : text)
    if (c < '0' || c > '9') return false;
  return true;  // port = *DIGIT: may be empty
}

}  // namespace

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_token(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text)
    if (!in(kTchar, c)) return false;
  return true;
}

bool is_authority(std::string_view text) {
  size_t host_end;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    for (char c : text.substr(1, close - 1))
      if (!in(kIpLiteral, c)) return false;
    host_end = close + 1;
  } else {
    host_end = 0;
    for (; host_end < text.size(); ++host_end) {
      const char c = text[host_end];
      if (in(kRegName, c)) continue;  // the usual case first: one lookup a byte
      if (c == ':') break;
      if (c != '%' || host_end + 2 >= text.size() || !is_hex(text[host_end + 1]) || !is_hex(text[host_end + 2]))
        return false;
      host_end += 2;
    }
  }
  if (host_end == text.size()) return true;
  return text[host_end] == ':' && is_port(text.substr(host_end + 1));
}

size_t absolute_form_prefix(std::string_view target) {
  auto starts = [&](std::string_view scheme) {
    if (target.size() < scheme.size()) return false;
    for (size_t i = 0; i < scheme.size(); ++i) {
      char c = target[i];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      if (c != scheme[i]) return false;
    }
    return true;
  };
  if (starts("http://")) return 7;
  if (starts("https://")) return 8;
  return 0;
}

bool starts_with_token_and_space(std::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size() && (bytes[i] == '\r' || bytes[i] == '\n')) ++i;  // empty lines before it
  size_t start = i;
  while (i < bytes.size() && in(kTchar, bytes[i])) ++i;
  return i > start && i < bytes.size() && bytes[i] == ' ';
}

bool only_chunked(std::string_view value) {
  value = trim_ows(value);
  constexpr std::string_view kChunked = "chunked";
  if (value.size() != kChunked.size()) return false;
  for (size_t i = 0; i < value.size(); ++i)
    if ((value[i] | 0x20) != kChunked[i]) return false;
  return true;
}

bool is_chunk_extensions(std::string_view text) {
  size_t i = 0;
  auto skip_bws = [&] {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
  };
  auto token = [&] {
    size_t start = i;
    while (i < text.size() && in(kTchar, text[i])) ++i;
    return i > start;
  };
  auto quoted_string = [&] {
    if (i >= text.size() || text[i] != '"') return false;
    for (++i; i < text.size(); ++i) {
      auto c = static_cast<unsigned char>(text[i]);
      if (c == '"') return ++i, true;
      if (c == '\\') {
        if (++i >= text.size()) return false;
        c = static_cast<unsigned char>(text[i]);
        if (c != '\t' && (c < 0x20 || c == 0x7f)) return false;
      } else if (c != '\t' && (c < 0x20 || c == 0x7f)) {
        return false;
      }
    }
    return false;
  };
  while (i < text.size()) {
    skip_bws();
    if (i >= text.size() || text[i] != ';') return false;
    ++i;
    skip_bws();
    if (!token()) return false;
    size_t after_name = i;
    skip_bws();
    if (i < text.size() && text[i] == '=') {
      ++i;
      skip_bws();
      if (!token() && !quoted_string()) return false;
    } else {
      i = after_name;  // the next ';' takes its own BWS
    }
  }
  return true;
}

namespace {

// One hop: "192.0.2.60", "192.0.2.60:4711", "[2001:db8::17]", "[2001:db8::17]:4711",
// "2001:db8::17" (X-Forwarded-For writes IPv6 bare), possibly in quotes.
bool parse_hop(std::string_view hop, int& family, unsigned char (&bytes)[16]) {
  hop = trim_ows(hop);
  if (hop.size() >= 2 && hop.front() == '"' && hop.back() == '"') hop = hop.substr(1, hop.size() - 2);
  std::string text;
  if (!hop.empty() && hop.front() == '[') {
    size_t close = hop.find(']');
    if (close == std::string_view::npos) return false;
    text = std::string(hop.substr(1, close - 1));
    family = AF_INET6;
  } else if (std::count(hop.begin(), hop.end(), ':') > 1) {
    text = std::string(hop);
    family = AF_INET6;
  } else {
    text = std::string(hop.substr(0, hop.find(':')));
    family = AF_INET;
  }
  return !text.empty() && inet_pton(family, text.c_str(), bytes) == 1;
}

// The for= values of a Forwarded field, left to right.
std::vector<std::string_view> forwarded_for(std::string_view field) {
  std::vector<std::string_view> hops;
  while (!field.empty()) {
    size_t comma = field.find(',');
    std::string_view element = field.substr(0, comma);
    field = comma == std::string_view::npos ? std::string_view() : field.substr(comma + 1);
    std::string_view found;
    while (!element.empty()) {
      size_t semi = element.find(';');
      std::string_view pair = trim_ows(element.substr(0, semi));
      element = semi == std::string_view::npos ? std::string_view() : element.substr(semi + 1);
      if (pair.size() > 4 && (pair[0] | 0x20) == 'f' && (pair[1] | 0x20) == 'o' && (pair[2] | 0x20) == 'r' &&
          pair[3] == '=')
        found = pair.substr(4);
    }
    hops.push_back(found);  // an element without for= is a hop we cannot read
  }
  return hops;
}

}  // namespace

std::string_view forwarded_client(std::string_view forwarded, std::string_view x_forwarded_for,
                                  const std::vector<Cidr>& trusted, char (&out)[46]) {
  std::vector<std::string_view> hops;
  if (!trim_ows(forwarded).empty()) {
    hops = forwarded_for(forwarded);
  } else {
    while (!x_forwarded_for.empty()) {
      size_t comma = x_forwarded_for.find(',');
      hops.push_back(x_forwarded_for.substr(0, comma));
      x_forwarded_for = comma == std::string_view::npos ? std::string_view() : x_forwarded_for.substr(comma + 1);
    }
  }
  for (size_t i = hops.size(); i-- > 0;) {
    int family;
    unsigned char bytes[16];
    if (!parse_hop(hops[i], family, bytes)) return {};
    bool is_trusted = std::any_of(trusted.begin(), trusted.end(), [&](const Cidr& c) { return c.contains(family, bytes); });
    if (!is_trusted || i == 0) {
      if (!inet_ntop(family, bytes, out, sizeof out)) return {};
      return out;
    }
  }
  return {};
}

}  // namespace shoal
