// A blocking HTTP/1.1 test client over loopback TCP or a unix socket. Responses are parsed with
// llhttp (response mode), the same parser the server uses, never by hand.
#pragma once

#include <llhttp.h>

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace shoal::test {

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  bool keep_alive = false;
  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// Incremental response parser. Call expect_head() before the bytes of a HEAD response.
class ResponseParser {
 public:
  ResponseParser();
  ResponseParser(const ResponseParser&) = delete;
  ResponseParser& operator=(const ResponseParser&) = delete;
  // false on a parse error (the bytes are not a valid HTTP/1.1 response stream).
  bool feed(std::string_view bytes);
  void expect_head(int count = 1) { heads_pending_ += count; }
  std::vector<HttpResponse>& responses() { return responses_; }
  std::string error() const;
  int interim_count() const { return interim_; }  // 1xx responses seen (not in responses())

 private:
  static int on_header_field(llhttp_t*, const char*, size_t);
  static int on_header_value(llhttp_t*, const char*, size_t);
  static int on_headers_complete(llhttp_t*);
  static int on_body(llhttp_t*, const char*, size_t);
  static int on_message_complete(llhttp_t*);
  llhttp_t parser_;
  llhttp_settings_t settings_;
  HttpResponse current_;
  std::string field_, value_;
  bool in_value_ = false;
  int heads_pending_ = 0;
  int interim_ = 0;
  std::vector<HttpResponse> responses_;
};

enum class Eof { None, Clean, Reset };

class Client {
 public:
  // Connects to 127.0.0.1:port, from `from` (a loopback address such as "127.0.0.9") if given.
  explicit Client(int port, const char* from = nullptr);
  // Connects to a unix socket.
  explicit Client(const std::string& unix_path);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  bool send(std::string_view bytes);
  // Reads until `count` complete responses arrived, the peer closed, or the deadline passed.
  std::vector<HttpResponse> read(size_t count, std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Reads until the peer closes or the deadline passes; tells how it closed.
  Eof wait_close(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ResponseParser& parser() { return parser_; }
  Eof eof() const { return eof_; }
  std::string raw() const { return raw_; }

 private:
  bool read_some(std::chrono::steady_clock::time_point deadline);
  int fd_ = -1;
  ResponseParser parser_;
  Eof eof_ = Eof::None;
  std::string raw_;
};

// One request on a fresh connection with Connection: close; status 0 if no response came.
HttpResponse get(int port, const std::string& path, std::chrono::milliseconds timeout = std::chrono::seconds(5));

// "GET path HTTP/1.1" with Host; extra is inserted before the blank line.
std::string request(std::string_view method, std::string_view path, std::string_view extra = {},
                    std::string_view body = {});

}  // namespace shoal::test
