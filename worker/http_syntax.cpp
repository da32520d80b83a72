#include "worker/http_syntax.hpp"

#include <array>

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
    while (host_end < text.size() && text[host_end] != ':') {
      char c = text[host_end];
      if (c == '%') {
        if (host_end + 2 >= text.size() || !is_hex(text[host_end + 1]) || !is_hex(text[host_end + 2])) return false;
        host_end += 3;
        continue;
      }
      if (!in(kRegName, c)) return false;
      ++host_end;
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
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
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

}  // namespace shoal
