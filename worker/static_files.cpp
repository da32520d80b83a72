#include "worker/static_files.hpp"

#include <charconv>
#include <cstdio>
#include <cstring>

#include "worker/http_syntax.hpp"

namespace shoal {
namespace {

constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

bool number(std::string_view s, int& out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

int month_of(std::string_view m) {
  for (int i = 0; i < 12; ++i)
    if (m == kMonths[i]) return i;
  return -1;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

std::optional<time_t> make_time(int year, int month, int day, std::string_view hms) {
  int h, m, s;
  if (hms.size() != 8 || hms[2] != ':' || hms[5] != ':' || !number(hms.substr(0, 2), h) ||
      !number(hms.substr(3, 2), m) || !number(hms.substr(6, 2), s))
    return std::nullopt;
  if (month < 0 || day < 1 || day > 31 || h > 23 || m > 59 || s > 60) return std::nullopt;
  return static_cast<time_t>(days_from_civil(year, static_cast<unsigned>(month + 1), static_cast<unsigned>(day)) *
                                 86400 + h * 3600 + m * 60 + s);
}

// One entity-tag at the front of `list`: W/ and the quoted opaque part.
bool next_etag(std::string_view& list, bool& weak, std::string_view& opaque) {
  list = trim_ows(list);
  weak = list.starts_with("W/");
  if (weak) list.remove_prefix(2);
  if (list.empty() || list[0] != '"') return false;
  size_t close = list.find('"', 1);
  if (close == std::string_view::npos) return false;
  opaque = list.substr(0, close + 1);
  list.remove_prefix(close + 1);
  list = trim_ows(list);
  if (!list.empty()) {
    if (list[0] != ',') return false;
    list.remove_prefix(1);
  }
  return true;
}

}  // namespace

FileValidators::FileValidators(uint64_t inode, uint64_t size, time_t mtime, long mtime_ns) : mtime_s(mtime) {
  int n = snprintf(etag, sizeof etag, "\"%llx-%llx-%llx\"", static_cast<unsigned long long>(inode),
                   static_cast<unsigned long long>(size),
                   static_cast<unsigned long long>(mtime) * 1000000000ull + static_cast<unsigned long long>(mtime_ns));
  etag_length = n > 0 ? static_cast<size_t>(n) : 0;
  last_modified_length = format_http_date(mtime, last_modified);
}

size_t format_http_date(time_t t, char* out) {
  tm utc;
  gmtime_r(&t, &utc);
  int n = snprintf(out, 30, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[utc.tm_wday], utc.tm_mday,
                   kMonths[utc.tm_mon], utc.tm_year + 1900, utc.tm_hour, utc.tm_min, utc.tm_sec);
  return n > 0 ? static_cast<size_t>(n) : 0;
}

std::optional<time_t> parse_http_date(std::string_view text) {
  text = trim_ows(text);
  int day, year;
  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
  if (text.size() == 29 && text[3] == ',' && text.substr(25) == " GMT") {
    if (!number(text.substr(5, 2), day) || !number(text.substr(12, 4), year)) return std::nullopt;
    return make_time(year, month_of(text.substr(8, 3)), day, text.substr(17, 8));
  }
  // asctime: "Sun Nov  6 08:49:37 1994"
  if (text.size() == 24 && text[3] == ' ' && text[7] == ' ') {
    std::string_view d = text.substr(8, 2);
    if (d[0] == ' ') d.remove_prefix(1);
    if (!number(d, day) || !number(text.substr(20, 4), year)) return std::nullopt;
    return make_time(year, month_of(text.substr(4, 3)), day, text.substr(11, 8));
  }
  // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"; a two-digit year more than 50 years ahead is in
  // the past century (RFC 9110 5.6.7).
  size_t comma = text.find(", ");
  if (comma != std::string_view::npos && text.size() == comma + 24 && text.substr(comma + 20) == " GMT") {
    std::string_view rest = text.substr(comma + 2);
    if (rest[2] != '-' || rest[6] != '-' || !number(rest.substr(0, 2), day) || !number(rest.substr(7, 2), year))
      return std::nullopt;
    time_t now = time(nullptr);
    tm utc;
    gmtime_r(&now, &utc);
    int century = (utc.tm_year + 1900) / 100 * 100;
    year += century;
    if (year > utc.tm_year + 1900 + 50) year -= 100;
    return make_time(year, month_of(rest.substr(3, 3)), day, rest.substr(10, 8));
  }
  return std::nullopt;
}

bool etag_list_matches(std::string_view list, std::string_view etag, bool weak_comparison) {
  list = trim_ows(list);
  if (list == "*") return true;
  bool weak;
  std::string_view opaque;
  while (!list.empty() && next_etag(list, weak, opaque)) {
    if (opaque == etag && (weak_comparison || !weak)) return true;
  }
  return false;
}

Precondition evaluate_preconditions(const Conditions& r, const FileValidators& file) {
  // 1 and 2: If-Match, else If-Unmodified-Since.
  if (!r.if_match.empty()) {
    if (!etag_list_matches(r.if_match, file.etag_view(), false)) return Precondition::Failed;
  } else if (!r.if_unmodified_since.empty()) {
    auto date = parse_http_date(r.if_unmodified_since);
    if (date && file.mtime_s > *date) return Precondition::Failed;
  }
  // 3 and 4: If-None-Match, else If-Modified-Since (GET and HEAD only: all a static route serves).
  if (!r.if_none_match.empty()) {
    if (etag_list_matches(r.if_none_match, file.etag_view(), true)) return Precondition::NotModified;
  } else if (!r.if_modified_since.empty()) {
    auto date = parse_http_date(r.if_modified_since);
    if (date && file.mtime_s <= *date) return Precondition::NotModified;
  }
  return Precondition::Proceed;
}

ByteRange select_range(std::string_view range, std::string_view if_range, uint64_t size, const FileValidators& file) {
  ByteRange whole;
  range = trim_ows(range);
  if (range.empty() || !range.starts_with("bytes=")) return whole;
  if (!if_range.empty()) {
    if_range = trim_ows(if_range);
    // An entity-tag must match strongly; a date must be the file's Last-Modified exactly.
    bool current = if_range.starts_with("\"") ? if_range == file.etag_view()
                                               : (parse_http_date(if_range) == std::optional<time_t>(file.mtime_s));
    if (!current) return whole;
  }
  std::string_view spec = trim_ows(range.substr(6));
  if (spec.find(',') != std::string_view::npos) return whole;  // several ranges: the whole file
  size_t dash = spec.find('-');
  if (dash == std::string_view::npos) return whole;
  std::string_view first_text = trim_ows(spec.substr(0, dash)), last_text = trim_ows(spec.substr(dash + 1));
  auto parse_u64 = [](std::string_view s, uint64_t& out) {
    if (s.empty()) return false;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && end == s.data() + s.size();
  };
  ByteRange r;
  r.kind = ByteRange::Kind::Partial;
  if (first_text.empty()) {  // suffix: the last N bytes
    uint64_t suffix;
    if (!parse_u64(last_text, suffix)) return whole;
    if (suffix == 0 || size == 0) return {ByteRange::Kind::Unsatisfiable};
    r.first = suffix >= size ? 0 : size - suffix;
    r.last = size - 1;
    return r;
  }
  if (!parse_u64(first_text, r.first)) return whole;
  if (last_text.empty()) {
    r.last = size ? size - 1 : 0;
  } else {
    if (!parse_u64(last_text, r.last) || r.last < r.first) return whole;  // invalid: ignored
    if (r.last >= size) r.last = size ? size - 1 : 0;
  }
  if (r.first >= size) return {ByteRange::Kind::Unsatisfiable};
  return r;
}

}  // namespace shoal
