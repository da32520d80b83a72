// libFuzzer target: arbitrary bytes, split at arbitrary points, into the real connection code
// (HttpServer and Connection on a real event loop), through a unix socketpair as the transport.
// The input's first 8 bytes seed where it is split (and, by their top bit, whether the connection
// comes from a listener with proxy_protocol = "any", its input starting with a PROXY header whose
// address may be a trusted proxy's, so that X-Forwarded-For / Forwarded are parsed too); the rest
// is what the client sends, then EOF.
//
// Invariants checked on everything the server writes back:
// - it is a sequence of well-framed HTTP/1.1 responses (status line, Content-Length, Connection,
//   a body of exactly that length, none for a HEAD request kept alive), and nothing else;
// - nothing follows a response that says Connection: close;
// - never more final responses than requests: an independent llhttp parser counts the complete
//   requests in the input, and only a last request it could not parse or that is incomplete may
//   add one (the 400, or a 431/413 before its end);
// - the server closes the connection once the client's input ends (no hang).
#include <event2/event.h>
#include <llhttp.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.hpp"
#include "worker/http_syntax.hpp"
#include "worker/server.hpp"

namespace {

using namespace shoal;

#define CHECK(cond, ...)                                         \
  do {                                                           \
    if (!(cond)) {                                               \
      fprintf(stderr, "invariant broken: %s: ", #cond);          \
      fprintf(stderr, __VA_ARGS__);                              \
      fprintf(stderr, "\n");                                     \
      abort();                                                   \
    }                                                            \
  } while (0)

struct World {
  event_base* base = nullptr;
  std::unique_ptr<Config> config;
  Application app;
  std::unique_ptr<HttpServer> server;

  World() {
    spdlog::set_level(spdlog::level::off);
    base = event_base_new();
    auto parsed = parse_config(R"([server]
listen = ["127.0.0.1:0"]
[http]
max_header_bytes = 2048
max_url_bytes = 512
max_body_bytes = 4096
trusted_proxies = ["10.0.0.0/8", "2001:db8::/32"]
[[route]]
path = "/hello"
body = "ok\n"
[[route]]
path = "/teapot"
status = 418
body = "short and stout\n"
[[route]]
path = "/echo"
handler = "echo"
[[route]]
path = "/info"
handler = "info"
)", "/tmp/fuzz.toml");
    if (!parsed.config) abort();
    config = std::make_unique<Config>(std::move(*parsed.config));
    app.handle("/app", [](const Request& req, Responder reply) { reply.send(200, "text/plain", req.path); });
    app.handle("/twice", [](const Request&, Responder reply) {
      reply.send(200, "text/plain", "first\n");
      reply.send(200, "text/plain", "second\n");  // must be ignored: one response per request
    });
    app.handle("/throws", [](const Request&, Responder) -> void { throw std::runtime_error("fuzz"); });
    server = std::make_unique<HttpServer>(base, *config, app);
  }
};

// The requests an independent strict llhttp parser finds in the input, and their methods. It
// accepts what the server accepts beyond llhttp's strict mode (RFC 9110 2.5 and 9112 7.1.1):
// HTTP/1.2-1.9, and chunk extensions with bad whitespace or several after an unquoted value,
// which it drops from each chunk-size line after checking them, as the server does.
struct RequestCount {
  size_t begun = 0, complete = 0;
  bool failed = false;  // stopped at bytes it could not parse
  std::vector<bool> is_head;
  bool chunk_line_next = false, last_chunk = false;
};

RequestCount count_requests(std::string_view input) {
  RequestCount out;
  llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  settings.on_message_begin = [](llhttp_t* p) {
    ++static_cast<RequestCount*>(p->data)->begun;
    return 0;
  };
  settings.on_headers_complete = [](llhttp_t* p) {
    auto* count = static_cast<RequestCount*>(p->data);
    count->chunk_line_next = (p->flags & F_CHUNKED) != 0;
    return count->chunk_line_next ? static_cast<int>(HPE_PAUSED) : 0;
  };
  settings.on_chunk_header = [](llhttp_t* p) {
    static_cast<RequestCount*>(p->data)->last_chunk = p->content_length == 0;
    return 0;
  };
  settings.on_chunk_complete = [](llhttp_t* p) {
    auto* count = static_cast<RequestCount*>(p->data);
    if (count->last_chunk) return 0;
    count->chunk_line_next = true;
    return static_cast<int>(HPE_PAUSED);
  };
  settings.on_message_complete = [](llhttp_t* p) {
    auto* count = static_cast<RequestCount*>(p->data);
    ++count->complete;
    count->is_head.push_back(p->method == HTTP_HEAD);
    return 0;
  };
  llhttp_t parser;
  llhttp_init(&parser, HTTP_REQUEST, &settings);
  parser.lenient_flags |= LENIENT_VERSION;
  parser.data = &out;
  while (!input.empty()) {
    if (out.chunk_line_next) {
      out.chunk_line_next = false;
      size_t lf = input.find('\n');
      if (lf == std::string_view::npos) return out;  // incomplete: begun > complete says so
      std::string line(input.substr(0, lf + 1));
      input.remove_prefix(lf + 1);
      size_t size_end = 0;
      while (size_end < line.size() && isxdigit(static_cast<unsigned char>(line[size_end]))) ++size_end;
      size_t line_end = line.size() - 1;
      if (line_end > size_end && line[line_end - 1] == '\r') --line_end;
      if (!is_chunk_extensions(std::string_view(line).substr(size_end, line_end - size_end))) {
        out.failed = true;
        return out;
      }
      line.erase(size_end, line_end - size_end);
      if (llhttp_execute(&parser, line.data(), line.size()) != HPE_OK) {
        out.failed = true;
        return out;
      }
      continue;
    }
    llhttp_errno_t err = llhttp_execute(&parser, input.data(), input.size());
    if (err == HPE_PAUSED) {
      input.remove_prefix(static_cast<size_t>(llhttp_get_error_pos(&parser) - input.data()));
      llhttp_resume(&parser);
      continue;
    }
    out.failed = err != HPE_OK && err != HPE_PAUSED_UPGRADE;
    break;
  }
  return out;
}

std::string_view header(std::string_view head, std::string_view name, int& count) {
  std::string_view value;
  count = 0;
  size_t at = head.find("\r\n");
  while (at != std::string_view::npos && at + 2 < head.size()) {
    size_t end = head.find("\r\n", at + 2);
    std::string_view line = head.substr(at + 2, end - at - 2);
    size_t colon = line.find(':');
    CHECK(colon != std::string_view::npos && colon > 0, "header line without a name: %.*s", (int)line.size(), line.data());
    if (line.substr(0, colon).size() == name.size() && strncasecmp(line.data(), name.data(), name.size()) == 0) {
      ++count;
      value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    }
    at = end;
  }
  return value;
}

void check_responses(std::string_view out, const RequestCount& requests) {
  size_t finals = 0;
  while (!out.empty()) {
    size_t end = out.find("\r\n\r\n");
    CHECK(end != std::string_view::npos, "an incomplete response head: %.*s", (int)std::min<size_t>(out.size(), 200), out.data());
    std::string_view head = out.substr(0, end + 2);
    CHECK(head.starts_with("HTTP/1.1 ") && head.size() >= 12, "bad status line: %.*s", (int)std::min<size_t>(head.size(), 80), head.data());
    int status = 0;
    std::from_chars(head.data() + 9, head.data() + 12, status);
    CHECK(status >= 100 && status <= 599, "status %d", status);
    out.remove_prefix(end + 4);
    if (status < 200) {  // 100 Continue: a bare status line
      CHECK(head == "HTTP/1.1 100 Continue\r\n", "interim response with headers");
      continue;
    }
    int n = 0;
    std::string_view length_text = header(head, "content-length", n);
    CHECK(n == 1, "%d Content-Length headers", n);
    size_t length = 0;
    auto [p, ec] = std::from_chars(length_text.data(), length_text.data() + length_text.size(), length);
    CHECK(ec == std::errc() && p == length_text.data() + length_text.size(), "bad Content-Length");
    std::string_view connection = header(head, "connection", n);
    CHECK(n == 1 && (connection == "keep-alive" || connection == "close"), "Connection header");
    header(head, "date", n);
    CHECK(n == 1, "%d Date headers", n);
    bool close = connection == "close";
    bool head_request = finals < requests.is_head.size() && requests.is_head[finals];
    ++finals;
    if (close) {
      // The last response: its body is all that may follow (none if it answered a HEAD).
      CHECK(out.size() == length || (out.empty() && head_request), "bytes after a Connection: close response "
            "(%zu left, Content-Length %zu)", out.size(), length);
      break;
    }
    size_t body = head_request ? 0 : length;
    CHECK(out.size() >= body, "short body: %zu of %zu", out.size(), body);
    out.remove_prefix(body);
  }
  // One more than the complete requests only for a last request that the server may reject
  // before it is complete: unparsable, or cut short (over a size limit, then the client stopped).
  bool last_incomplete = requests.failed || requests.begun > requests.complete;
  size_t allowed = requests.complete + (last_incomplete ? 1 : 0);
  CHECK(finals <= allowed, "%zu responses for %zu complete requests%s", finals, requests.complete,
        last_incomplete ? " and an incomplete or unparsable one" : "");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World world;
  if (size < 8) return 0;
  uint64_t seed;
  memcpy(&seed, data, 8);
  std::string_view input(reinterpret_cast<const char*>(data + 8), size - 8);

  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) abort();
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  bool proxied = (seed >> 63) != 0;
  world.server->adopt(fds[0], reinterpret_cast<sockaddr*>(&sun), sizeof(sa_family_t),
                      proxied ? ProxyProtocol::Any : ProxyProtocol::Off);

  std::string out;
  auto drain_output = [&] {
    char buf[65536];
    for (;;) {
      ssize_t n = recv(fds[1], buf, sizeof buf, 0);
      if (n > 0) out.append(buf, static_cast<size_t>(n));
      else return n == 0;  // true: the server closed
    }
  };
  bool closed = false;
  size_t sent = 0;
  while (sent < input.size() && !closed) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    size_t chunk = std::min<size_t>(input.size() - sent, 1 + (seed >> 33) % 97);
    ssize_t n = send(fds[1], input.data() + sent, chunk, MSG_NOSIGNAL);
    if (n > 0) sent += static_cast<size_t>(n);
    event_base_loop(world.base, EVLOOP_NONBLOCK);
    closed = drain_output();
    if (n < 0 && !closed && errno != EAGAIN) break;  // the server closed its end mid-way
  }
  shutdown(fds[1], SHUT_WR);
  // After the client's EOF the server answers what it can and closes (a rejected request's
  // connection first lingers until that EOF): within a few turns of the loop, with no timer.
  for (int round = 0; round < 200 && (!closed || world.server->connection_count() > 0); ++round) {
    event_base_loop(world.base, EVLOOP_NONBLOCK);
    closed = drain_output() || closed;
  }
  CHECK(closed, "the connection is still open after the client's EOF (%zu bytes out)", out.size());
  CHECK(world.server->connection_count() == 0, "the server still holds the connection after the client left");
  close(fds[1]);

  // Behind a PROXY header the requests start after it: found by a rule of its own here (a v1
  // line up to its CRLF, or a v2 header's declared length), not by the server's parser.
  std::string_view requests = input.substr(0, sent);
  if (proxied) {
    static const std::string_view kV2("\r\n\r\n\0\r\nQUIT\n", 12);
    size_t skip = std::string_view::npos;
    if (requests.starts_with("PROXY ")) {
      size_t crlf = requests.find("\r\n");
      if (crlf != std::string_view::npos && crlf + 2 <= 107) skip = crlf + 2;
    } else if (requests.starts_with(kV2) && requests.size() >= 16) {
      size_t length = 16 + ((static_cast<size_t>(static_cast<unsigned char>(requests[14])) << 8) |
                            static_cast<unsigned char>(requests[15]));
      if (length <= requests.size()) skip = length;
    }
    if (skip == std::string_view::npos) {
      // No complete header: nothing may be answered at all.
      CHECK(out.empty(), "%zu bytes answered to a connection without a complete PROXY header", out.size());
      return 0;
    }
    requests.remove_prefix(skip);
  }
  check_responses(out, count_requests(requests));
  return 0;
}
