// Long-lived responses against the real binary (the example app's /events and /poll): SSE
// streams and long-polls through a reload, a stop, a wide drain and a reload storm; and a
// keep-alive client through a stop with a drain delay.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <thread>

#include "support/server_fixture.hpp"

namespace shoal::test {
namespace {

using Clock = std::chrono::steady_clock;
using ::testing::HasSubstr;

// One SSE client on its own non-blocking socket: what it got, and how its stream ended.
struct SseClient {
  int fd = -1;
  std::string raw;       // everything received on this connection
  ResponseParser parser;
  bool ended = false;    // a whole response: the chunked terminator came
  Eof eof = Eof::None;   // how the connection then closed
  Clock::time_point ended_at{};
  unsigned long last_id = 0;

  ~SseClient() { disconnect(); }
  void disconnect() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  bool connect_to(int port, const std::string& target) {
    disconnect();
    raw.clear();
    parser.responses().clear();
    ended = false;
    eof = Eof::None;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return disconnect(), false;
    std::string get = "GET " + target + " HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n";
    if (last_id) get += "Last-Event-ID: " + std::to_string(last_id) + "\r\n";
    get += "\r\n";
    if (::send(fd, get.data(), get.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(get.size())) return disconnect(), false;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return true;
  }
  // Reads what is there; false once the connection is over.
  bool read_some() {
    char buf[16384];
    while (fd >= 0) {
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n > 0) {
        raw.append(buf, static_cast<size_t>(n));
        parser.feed({buf, static_cast<size_t>(n)});
        if (!ended && !parser.responses().empty()) ended = true, ended_at = Clock::now();
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      eof = n == 0 ? Eof::Clean : Eof::Reset;
      if (!ended) ended_at = Clock::now();
      disconnect();
      return false;
    }
    return false;
  }
  size_t ticks() const { return occurrences(raw, "event: tick"); }
  // The stream's last words, in its decoded body: a reconnect delay, then the shutdown event.
  bool said_goodbye() {
    if (parser.responses().empty()) return false;
    const std::string& body = parser.responses()[0].body;
    return body.ends_with("retry: 1000\n\nevent: shutdown\ndata: reconnect\n\n");
  }
  // The last tick's id, for Last-Event-ID when it reconnects.
  void remember_last_id() {
    size_t at = raw.rfind("\nid: ");
    if (at != std::string::npos) last_id = std::strtoul(raw.c_str() + at + 5, nullptr, 10);
  }
};

// Reads every client until `done` or the deadline.
bool pump(std::vector<std::unique_ptr<SseClient>>& clients, const std::function<bool()>& done,
          std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (done()) return true;
    std::vector<pollfd> fds;
    for (auto& c : clients)
      if (c->fd >= 0) fds.push_back({c->fd, POLLIN, 0});
    ::poll(fds.data(), fds.size(), 20);
    for (auto& c : clients) c->read_some();
  }
  return done();
}

std::vector<std::unique_ptr<SseClient>> open_streams(int port, size_t n, const std::string& target = "/events") {
  std::vector<std::unique_ptr<SseClient>> clients;
  for (size_t i = 0; i < n; ++i) {
    clients.push_back(std::make_unique<SseClient>());
    EXPECT_TRUE(clients.back()->connect_to(port, target)) << "stream " << i;
  }
  return clients;
}

bool all_ticking(std::vector<std::unique_ptr<SseClient>>& clients, size_t ticks) {
  return std::all_of(clients.begin(), clients.end(), [&](auto& c) { return c->ticks() >= ticks; });
}

// Every stream ended with the goodbye, the chunked terminator, and a clean close: never a reset.
void expect_ended_cleanly(std::vector<std::unique_ptr<SseClient>>& clients) {
  for (size_t i = 0; i < clients.size(); ++i) {
    SseClient& c = *clients[i];
    EXPECT_TRUE(c.said_goodbye()) << "stream " << i << " did not end on its shutdown event: ..."
                                  << c.raw.substr(c.raw.size() > 200 ? c.raw.size() - 200 : 0);
    EXPECT_TRUE(c.ended) << "stream " << i << " has no terminator";
    EXPECT_EQ(c.eof, Eof::Clean) << "stream " << i;
  }
}

class StreamsTest : public ServerTest {
 protected:
  void start_app(const std::string& server_keys, const std::string& sections) {
    start(server_keys, sections, "\"127.0.0.1:0\"", EXAMPLE_APP_BINARY);
  }

  // 20 SSE streams and a long-poll, then `signo`: every stream ends on its shutdown event with a
  // clean end, and the long-poll is answered at once. How long after the signal the last ended.
  std::chrono::milliseconds streams_through(int signo, const std::string& sections) {
    start_app("workers = 2", sections);
    clients_ = open_streams(port_, 20);
    Client poll(port_);
    EXPECT_TRUE(poll.send("GET /poll HTTP/1.1\r\nHost: test\r\n\r\n"));
    EXPECT_TRUE(pump(clients_, [&] { return all_ticking(clients_, 2); }, 5s));
    const auto signalled = Clock::now();
    shoal_->signal(signo);
    EXPECT_TRUE(pump(clients_, [&] { return std::all_of(clients_.begin(), clients_.end(), [](auto& c) { return c->fd < 0; }); }, 8s));
    expect_ended_cleanly(clients_);
    auto answered = poll.read(1, 3s);
    EXPECT_EQ(answered.size(), 1u);
    if (!answered.empty()) {
      EXPECT_EQ(answered[0].status, 200);
      EXPECT_EQ(answered[0].body, "draining: poll again\n");
    }
    auto last = std::max_element(clients_.begin(), clients_.end(), [](auto& a, auto& b) { return a->ended_at < b->ended_at; });
    return std::chrono::duration_cast<std::chrono::milliseconds>((*last)->ended_at - signalled);
  }

  std::vector<std::unique_ptr<SseClient>> clients_;
};

// SIGHUP: each stream gets its shutdown event and a clean end within the spread window, then
// reconnects (Last-Event-ID) to the new generation, which resumes after the last tick; the
// long-poll in flight is answered at once.
TEST_F(StreamsTest, SseClientsThroughAReloadGetTheFinalEventAndReconnectToTheNewGeneration) {
  auto took = streams_through(SIGHUP, "[shutdown]\nstream_grace = \"5s\"\nstream_close_spread = \"300ms\"\n");
  std::cout << "reload: 20 streams ended cleanly, the last " << took.count() << " ms after SIGHUP\n";
  EXPECT_LT(took, 3s);  // told within the 300 ms spread (after the new generation is ready), not at stream_grace
  ASSERT_TRUE(shoal_->wait_for_log("generation 1 drained in", 5s));
  // Reconnected, they are served by generation 2 (generation 1 is gone), from where they left off.
  for (auto& c : clients_) {
    c->remember_last_id();
    ASSERT_GT(c->last_id, 0u);
    ASSERT_TRUE(c->connect_to(port_, "/events"));
  }
  ASSERT_TRUE(pump(clients_, [&] { return all_ticking(clients_, 1); }, 5s));
  for (auto& c : clients_) {
    size_t at = c->raw.find("\nid: ");
    ASSERT_NE(at, std::string::npos);
    EXPECT_EQ(std::strtoul(c->raw.c_str() + at + 5, nullptr, 10), c->last_id + 1);
  }
  expect_clean_log();
}

// SIGTERM: the same goodbye and clean end, well before the deadline; exit code 0.
TEST_F(StreamsTest, SseClientsThroughAStopGetTheFinalEventAndTheStopIsClean) {
  auto took = streams_through(SIGTERM, "[shutdown]\ntimeout = \"10s\"\nstream_grace = \"5s\"\nstream_close_spread = \"200ms\"\n");
  std::cout << "stop: 20 streams ended cleanly, the last " << took.count() << " ms after SIGTERM\n";
  EXPECT_LT(took, 3s);
  auto status = shoal_->wait_exit(10s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->exited);
  EXPECT_EQ(status->code, 0);
  expect_clean_log();
}

// 200 streams at a drain end spread over stream_close_spread, not in one millisecond.
TEST_F(StreamsTest, TwoHundredStreamsAtADrainEndSpreadOverTheWindow) {
  start_app("workers = 1", "[shutdown]\nstream_grace = \"5s\"\nstream_close_spread = \"1s\"\n");
  auto clients = open_streams(port_, 200);
  ASSERT_TRUE(pump(clients, [&] { return all_ticking(clients, 1); }, 10s));
  shoal_->signal(SIGHUP);
  ASSERT_TRUE(pump(clients, [&] { return std::all_of(clients.begin(), clients.end(), [](auto& c) { return c->fd < 0; }); }, 8s));
  expect_ended_cleanly(clients);
  std::vector<Clock::time_point> ends;
  for (auto& c : clients) ends.push_back(c->ended_at);
  std::sort(ends.begin(), ends.end());
  auto ms = [](Clock::duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  // How many ended in each tenth of the window: an even spread puts about 20 in each.
  std::vector<int> per_tenth(11, 0);
  for (auto t : ends) per_tenth[std::min<long>(10, ms(t - ends.front()) / 100)]++;
  std::cout << "200 streams ended over " << ms(ends.back() - ends.front()) << " ms; per 100 ms:";
  for (int n : per_tenth) std::cout << ' ' << n;
  std::cout << "\n";
  EXPECT_GE(ms(ends.back() - ends.front()), 800);
  EXPECT_LE(ms(ends.back() - ends.front()), 1500);
  EXPECT_LE(*std::max_element(per_tenth.begin(), per_tenth.end()), 60);  // no storm in any 100 ms
}

size_t total_rss_kib(pid_t master) {
  size_t kib = 0;
  std::vector<pid_t> pids = children_of(master);
  pids.push_back(master);
  for (pid_t pid : pids) {
    std::string status = read_file("/proc/" + std::to_string(pid) + "/status");
    size_t at = status.find("VmRSS:");
    if (at != std::string::npos) kib += std::strtoul(status.c_str() + at + 6, nullptr, 10);
  }
  return kib;
}

// A SIGHUP every 500 ms for 20 s under 50 streams that outlive their drain notice (?hold), each
// of whose clients opens its next stream as soon as it is told (event: shutdown), so that every
// generation holds 50 streams. Never more than max_draining_generations generations drain uncut,
// every stream ends cleanly (terminator, then close), and memory returns to its level before.
TEST_F(StreamsTest, AReloadStormUnderLongLivedStreamsNeverPilesUpGenerations) {
  start_app("workers = 1", "[shutdown]\ntimeout = \"30s\"\nstream_grace = \"4s\"\nstream_close_spread = \"100ms\"\n"
                           "[reload]\nmax_draining_generations = 2\n");
  auto clients = open_streams(port_, 50, "/events?hold");
  ASSERT_TRUE(pump(clients, [&] { return all_ticking(clients, 2); }, 5s));
  const size_t rss_before = total_rss_kib(shoal_->pid());
  const std::string control = dir_.path() + "/shoal.toml";
  size_t max_uncut = 0, max_draining = 0, max_processes = 0, reconnects = 0, ended = 0, unclean = 0;
  std::vector<bool> moved_on(clients.size(), false);
  auto keep_streaming = [&] {
    const size_t n = clients.size();
    for (size_t i = 0; i < n; ++i) {
      SseClient& c = *clients[i];
      if (!moved_on[i] && c.raw.find("event: shutdown") != std::string::npos) {
        moved_on[i] = true;  // told: the next stream opens now, to the new generation
        c.remember_last_id();
        clients.push_back(std::make_unique<SseClient>());
        clients.back()->last_id = c.last_id;
        EXPECT_TRUE(clients.back()->connect_to(port_, "/events?hold"));
        moved_on.push_back(false);
        ++reconnects;
      }
    }
    for (size_t i = 0; i < clients.size();) {  // ended ones go, after their end is checked
      if (clients[i]->fd >= 0) {
        ++i;
        continue;
      }
      ++ended;
      if (!clients[i]->ended || clients[i]->eof != Eof::Clean || !moved_on[i]) ++unclean;
      clients.erase(clients.begin() + static_cast<std::ptrdiff_t>(i));
      moved_on.erase(moved_on.begin() + static_cast<std::ptrdiff_t>(i));
    }
  };
  const auto storm_end = Clock::now() + 20s;
  int reloads = 0;
  while (Clock::now() < storm_end) {
    shoal_->signal(SIGHUP);
    ++reloads;
    const auto next = Clock::now() + 500ms;
    while (Clock::now() < next) {
      pump(clients, [] { return false; }, 100ms);
      keep_streaming();
      std::string out;
      run_command({SHOAL_BINARY, "status", "--json", "-c", control}, out, 2s);
      auto status = nlohmann::json::parse(out, nullptr, false);
      if (status.is_discarded() || !status.contains("generations")) continue;
      size_t uncut = 0, draining = 0;
      for (const auto& g : status["generations"])
        if (g["state"] == "draining") ++draining, uncut += !g.value("hurried", false);
      max_uncut = std::max(max_uncut, uncut);
      max_draining = std::max(max_draining, draining);
      max_processes = std::max(max_processes, children_of(shoal_->pid()).size());
    }
  }
  // Settle: the last generations drain within stream_grace; the clients keep streaming.
  const auto settle = Clock::now() + 15s;
  while (Clock::now() < settle && children_of(shoal_->pid()).size() > 1) {
    pump(clients, [] { return false; }, 100ms);
    keep_streaming();
  }
  const size_t rss_after = total_rss_kib(shoal_->pid());
  std::cout << reloads << " reloads; draining generations at most " << max_draining << " (" << max_uncut
            << " not cut short); the master's children at most " << max_processes << "; " << reconnects
            << " streams reopened on the shutdown event, " << ended << " ended, " << unclean
            << " of them uncleanly; RSS of master and workers " << rss_before << " KiB before, " << rss_after
            << " KiB after\n";
  EXPECT_GE(reloads, 30);
  EXPECT_LE(max_uncut, 2u);
  EXPECT_LE(max_draining, 3u);  // a generation cut short is gone as soon as its streams have ended
  EXPECT_LE(max_processes, 4u);
  EXPECT_EQ(unclean, 0u);
  EXPECT_GE(reconnects, 50u * static_cast<size_t>(reloads - 3));
  EXPECT_EQ(children_of(shoal_->pid()).size(), 1u);
  EXPECT_EQ(clients.size(), 50u);  // the streams of the serving generation
  EXPECT_LE(rss_after, rss_before + rss_before / 4 + 2048);
  EXPECT_GE(occurrences(shoal_->log(), "is cut short"), static_cast<size_t>(reloads - 3));
}

// Issue 18's report: a Python http.client sending every 0.5 s over one keep-alive connection
// through `shoal stop` with drain_delay = "3s". Every answer from the drain's start says
// Connection: close, so the client reconnects for each request (to a balancer, another
// instance); none meets a closed connection, and once the listeners close it is refused.
// The client that can still meet a closed connection is one idle through the whole drain delay
// and idle_grace, sending after the listeners closed: every 5 s here.
class KeepAliveThroughStop : public StreamsTest {
 protected:
  // Runs the client every `period` through a SIGTERM 1.2 s in; what it printed.
  // SIGTERM once the client has had `answers_before_stop` answers (its start may be slow on a
  // loaded machine: a fixed delay could stop the server before its first request).
  std::string run_client(const char* period, int answers_before_stop) {
    start("workers = 2", "[shutdown]\ndrain_delay = \"3s\"\ntimeout = \"10s\"\n");
    const std::string script = dir_.write("client.py", R"(
import http.client, sys, time
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=5)
period = float(sys.argv[2])
answered = sys.argv[3]
ok = close = 0
until = time.monotonic() + 9
while time.monotonic() < until:
    try:
        conn.request("GET", "/hello")
        r = conn.getresponse()
        r.read()
        ok += 1
        close += r.getheader("Connection") == "close"
        with open(answered, "w") as f:
            f.write(str(ok))
    except ConnectionRefusedError:
        print(f"ok={ok} close={close} end=refused")
        sys.exit(0)
    except Exception as e:
        print(f"ok={ok} close={close} end={type(e).__name__}")
        sys.exit(0)
    time.sleep(period)
print(f"ok={ok} close={close} end=none")
)");
    std::string out;
    const std::string answered = dir_.path() + "/answered";
    std::thread stopper([&] {
      wait_until([&] {
        std::string n = read_file(answered);
        return !n.empty() && std::stoi(n) >= answers_before_stop;
      }, 10s);
      shoal_->signal(SIGTERM);
    });
    int rc = run_command({"/usr/bin/python3", script, std::to_string(port_), period, answered}, out, 25s);
    stopper.join();
    EXPECT_EQ(rc, 0);
    auto status = shoal_->wait_exit(10s);
    EXPECT_TRUE(status && status->exited && status->code == 0);
    std::cout << "python http.client every " << period << " s through a stop with drain_delay 3s: " << out;
    return out;
  }
};

TEST_F(KeepAliveThroughStop, AClientSendingEveryHalfSecondIsNeverCutOff) {
  std::string out = run_client("0.5", 3);
  EXPECT_THAT(out, HasSubstr("end=refused"));  // after the listeners closed, and nothing else
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(ok=(\d+) close=(\d+))")));
  // About 3 before the stop and 5 or 6 in the 3 s drain delay (each period is 0.5 s and a request);
  // at least 4 there on a loaded machine, and every one of them said close.
  EXPECT_GE(std::stoi(m[1]), 7);
  EXPECT_GE(std::stoi(m[2]), 4);
  EXPECT_GE(std::stoi(m[1]) - std::stoi(m[2]), 3);  // the answers before the stop kept the connection
}

TEST_F(KeepAliveThroughStop, AClientIdleThroughTheWholeDrainMeetsTheClose) {
  std::string out = run_client("5", 1);
  // Its one keep-alive answer came before the stop; its next request found the connection closed.
  EXPECT_THAT(out, ::testing::MatchesRegex("ok=1 close=0 end=(RemoteDisconnected|ConnectionResetError|BrokenPipeError)\n"));
}

}  // namespace
}  // namespace shoal::test
