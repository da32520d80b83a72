#include "worker/access_log.hpp"

#include <charconv>

namespace shoal {
namespace {

constexpr char kHex[] = "0123456789abcdef";
constexpr char kHexUpper[] = "0123456789ABCDEF";  // nginx writes \x22

void append_number(std::string& out, int64_t value) {
  char digits[24];
  auto end = std::to_chars(digits, digits + sizeof digits, value).ptr;
  out.append(digits, static_cast<size_t>(end - digits));
}

// nginx's default escaping for a log value.
void append_escaped_combined(std::string& out, std::string_view value) {
  for (unsigned char c : value) {
    if (c == '"' || c == '\\' || c < 0x20 || c >= 0x7f) {
      const char hex[4] = {'\\', 'x', kHexUpper[c >> 4], kHexUpper[c & 15]};
      out.append(hex, 4);
    } else {
      out += static_cast<char>(c);
    }
  }
}

// The length of the valid UTF-8 sequence at s[i], or 0 (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF).
size_t utf8_sequence(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
  const unsigned char c1 = byte(i + 1);
  if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 > 0x9f) || (c == 0xf0 && c1 < 0x90) || (c == 0xf4 && c1 > 0x8f))
    return 0;
  return n;
}

void append_json_string(std::string& out, std::string_view value) {
  out += '"';
  for (size_t i = 0; i < value.size();) {
    const unsigned char c = static_cast<unsigned char>(value[i]);
    if (c >= 0x80) {
      if (size_t n = utf8_sequence(value, i)) {
        out.append(value.substr(i, n));
        i += n;
      } else {
        out.append("\\ufffd");  // not UTF-8: replaced, never passed through
        ++i;
      }
      continue;
    }
    switch (c) {
      case '"': out.append("\\\""); break;
      case '\\': out.append("\\\\"); break;
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\t': out.append("\\t"); break;
      default:
        if (c < 0x20 || c == 0x7f) {
          const char hex[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
          out.append(hex, 6);
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  out += '"';
}

void append_field(std::string& out, std::string_view name, std::string_view value) {
  out += ",\"";
  out.append(name);
  out.append("\":");
  append_json_string(out, value);
}

void append_field(std::string& out, std::string_view name, int64_t value) {
  out += ",\"";
  out.append(name);
  out.append("\":");
  append_number(out, value);
}

}  // namespace

void append_combined(std::string& out, const AccessRecord& r, std::string_view time_local) {
  append_escaped_combined(out, r.address);
  out.append(" - - [");
  out.append(time_local);
  out.append("] \"");
  append_escaped_combined(out, r.method);
  out += ' ';
  append_escaped_combined(out, r.target);
  out.append(" HTTP/");
  out += static_cast<char>('0' + r.http_major);
  out += '.';
  out += static_cast<char>('0' + r.http_minor);
  out.append("\" ");
  append_number(out, r.status);
  out += ' ';
  append_number(out, static_cast<int64_t>(r.body_bytes));
  out.append(" \"");
  if (r.referer.empty()) out += '-';
  else append_escaped_combined(out, r.referer);
  out.append("\" \"");
  if (r.user_agent.empty()) out += '-';
  else append_escaped_combined(out, r.user_agent);
  out.append("\"\n");
}

void append_json(std::string& out, const AccessRecord& r, std::string_view time_rfc3339, const AccessIdentity& who) {
  out.append("{\"time\":");
  append_json_string(out, time_rfc3339);
  append_field(out, "remote_addr", r.address);
  if (r.port >= 0) append_field(out, "remote_port", r.port);
  else out.append(",\"remote_port\":null");
  append_field(out, "method", r.method);
  append_field(out, "target", r.target);
  const char protocol[8] = {'H', 'T', 'T', 'P', '/', static_cast<char>('0' + r.http_major), '.',
                            static_cast<char>('0' + r.http_minor)};
  append_field(out, "protocol", std::string_view(protocol, 8));
  append_field(out, "status", r.status);
  append_field(out, "body_bytes", static_cast<int64_t>(r.body_bytes));
  // Seconds with microseconds, as nginx's $request_time has milliseconds: "0.000123".
  out.append(",\"request_time\":");
  append_number(out, r.duration_us / 1'000'000);
  const int64_t micros = r.duration_us % 1'000'000;
  char frac[7] = {'.'};
  for (int k = 6, v = static_cast<int>(micros); k >= 1; --k, v /= 10) frac[k] = static_cast<char>('0' + v % 10);
  out.append(frac, 7);
  append_field(out, "user_agent", r.user_agent);
  append_field(out, "referer", r.referer);
  append_field(out, "request_id", r.request_id);
  append_field(out, "worker", who.worker);
  append_field(out, "pid", who.pid);
  append_field(out, "generation", static_cast<int64_t>(who.generation));
  out.append("}\n");
}

bool is_valid_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                    c == '.' || c == ':' || c == '+' || c == '/' || c == '=' || c == '~';
    if (!ok) return false;
  }
  return true;
}

}  // namespace shoal
