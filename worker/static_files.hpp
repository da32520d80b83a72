// What a static file's response depends on besides its bytes (RFC 9110 8.8, 13, 14): its
// validators, the request's preconditions and its byte range. Pure functions over the file's
// stat and the request's header values (tests/static_files_test.cpp).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <optional>
#include <string_view>

namespace shoal {

struct FileValidators {
  char etag[64];     // strong: "\"<inode>-<size>-<mtime ns>\"" in hex, quotes included
  size_t etag_length;
  char last_modified[32];  // IMF-fixdate
  size_t last_modified_length;
  time_t mtime_s;

  FileValidators(uint64_t inode, uint64_t size, time_t mtime_s, long mtime_ns);
  std::string_view etag_view() const { return {etag, etag_length}; }
  std::string_view last_modified_view() const { return {last_modified, last_modified_length}; }
};

// IMF-fixdate, RFC 850 or asctime (a recipient MUST accept all three, RFC 9110 5.6.7).
std::optional<time_t> parse_http_date(std::string_view text);
// "Sun, 06 Nov 1994 08:49:37 GMT" into out (at least 30 bytes); returns the length.
size_t format_http_date(time_t t, char* out);

// An If-Match / If-None-Match list ("*", or entity-tags separated by commas) against the file's
// strong etag: strong comparison for If-Match (a weak tag never matches), weak for If-None-Match.
bool etag_list_matches(std::string_view list, std::string_view etag, bool weak_comparison);

// The answer a conditional request gets before any range is looked at (RFC 9110 13.2.2).
enum class Precondition { Proceed, NotModified, Failed };
struct Conditions {
  std::string_view if_match, if_none_match, if_modified_since, if_unmodified_since;
};
Precondition evaluate_preconditions(const Conditions& request, const FileValidators& file);

// A Range header for a representation of `size` bytes.
struct ByteRange {
  enum class Kind { Whole, Partial, Unsatisfiable } kind = Kind::Whole;
  uint64_t first = 0, last = 0;  // inclusive, for Partial
};
// A single range of "bytes=" is served; several ranges, another unit or bad syntax are answered
// with the whole file (RFC 9110 14.2: a server MAY ignore Range). if_range, when present, must
// name the file's current state for the range to count (RFC 9110 13.1.5).
ByteRange select_range(std::string_view range, std::string_view if_range, uint64_t size, const FileValidators& file);

}  // namespace shoal
