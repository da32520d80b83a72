// [metrics] against the real binary: its page as promtool reads it, and a real Prometheus (Debian's
// prometheus package, started here on loopback) scraping it every second through a reload,
// graceful replacements and both kinds of binary upgrade, asked afterwards through its own HTTP
// API whether any counter ever went down.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>

#include <cstring>
#include <fstream>
#include <regex>
#include <thread>

#include "support/server_fixture.hpp"

namespace shoal::test {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

// A port of its own (port 0 would be the public listener's address again): free when chosen.
std::string metrics_section() {
  OccupiedPort free;
  return "[metrics]\nlisten = \"" + free.address() + "\"\n";
}

std::string url_encode(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') out += static_cast<char>(c);
    else out += "%" + std::string(1, "0123456789ABCDEF"[c >> 4]) + "0123456789ABCDEF"[c & 15];
  }
  return out;
}

pid_t read_pid(const std::string& path) {
  std::string text = read_file(path);
  return text.empty() ? -1 : std::stoi(text);
}

class MetricsTest : public ServerTest {
 protected:
  int metrics_port() {
    auto port = shoal_->wait_for_log(R"(listening on http://127\.0\.0\.1:(\d+)/metrics \(fd \d+, \[metrics\]\))", 2s);
    return port ? std::stoi(*port) : -1;
  }
  std::string scrape(int port) { return get(port, "/metrics").body; }
  // The log, also after the first master handed over and exited (its successor writes on).
  bool logged(const std::string& regex, std::chrono::milliseconds timeout) {
    std::regex re(regex);
    return wait_until([&] { return std::regex_search(shoal_->log(), re); }, timeout);
  }
};

TEST_F(MetricsTest, ALiveServersPagePassesPromtoolAndOnlyItsOwnListenerServesIt) {
  start("workers = 2", metrics_section());
  int metrics = metrics_port();
  ASSERT_GT(metrics, 0);
  for (int i = 0; i < 20; ++i) ASSERT_EQ(get(port_, "/hello").status, 200);
  ASSERT_EQ(get(port_, "/nope").status, 404);
  // Counted at once by whichever worker answered; any worker's scrape sums them all.
  ASSERT_TRUE(wait_until([&] { return scrape(metrics).find("shoal_requests_total{code=\"200\"} 20\n") != std::string::npos; }, 3s))
      << scrape(metrics);
  HttpResponse page = get(metrics, "/metrics");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_THAT(page.body, HasSubstr("shoal_requests_total{code=\"404\"} 1\n"));
  EXPECT_THAT(page.body, HasSubstr("shoal_workers{generation=\"1\",state=\"ready\"} 2\n"));
  EXPECT_THAT(page.body, HasSubstr("shoal_generation 1\n"));
  EXPECT_THAT(page.body, HasSubstr("shoal_connections_accepted_total 21\n"));
  EXPECT_THAT(page.body, HasSubstr("shoal_listen_queue_limit{listener=\"127.0.0.1:" + std::to_string(port_) + "\"} 1024\n"));
  EXPECT_THAT(page.body, HasSubstr("shoal_listen_queue_length{listener=\"127.0.0.1:" + std::to_string(port_) + "\"} 0\n"));
  EXPECT_THAT(page.body, ::testing::ContainsRegex("shoal_worker_resident_memory_bytes\\{generation=\"1\",worker=\"1\"\\} [1-9]"));
  std::string path = dir_.write("page.txt", page.body);
  std::string output;
  EXPECT_EQ(run_command({"/bin/sh", "-c", "promtool check metrics < " + path}, output), 0) << output;
  // Every figure the shipped alert rules use is one the page has.
  std::string rules = read_file(std::string(SHOAL_SOURCE_DIR) + "/conf/prometheus-alerts.yml");
  std::regex name(R"(shoal_[a-z_]+)");
  size_t names = 0;
  for (auto it = std::sregex_iterator(rules.begin(), rules.end(), name); it != std::sregex_iterator(); ++it, ++names)
    EXPECT_THAT(page.body, HasSubstr("# TYPE " + it->str() + " ")) << "conf/prometheus-alerts.yml uses " << it->str();
  EXPECT_GE(names, 5u);
  // Scrapes are not requests of the service: two in a row count the same, and a scrape's own
  // connection is not among the clients'.
  EXPECT_TRUE(wait_until([&] {
    return scrape(metrics).find("shoal_connections{generation=\"1\",state=\"writing\"} 0\n") != std::string::npos;
  }, 3s)) << scrape(metrics);
  EXPECT_THAT(scrape(metrics), HasSubstr("shoal_requests_total{code=\"200\"} 20\n"));
  // The metrics listener answers nothing else, and the public one does not answer the metrics.
  EXPECT_EQ(get(metrics, "/hello").status, 404);
  EXPECT_EQ(get(port_, "/metrics").status, 404);
  Client client(metrics);
  ASSERT_TRUE(client.send(request("POST", "/metrics", "Content-Length: 0\r\n")));
  auto refused = client.read(1, 2s);
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].status, 405);
  expect_clean_log();
}

// After a reload, the old generation is seen draining, by generation, for as long as it holds a
// request; then it is gone, and what it served stays counted.
TEST_F(MetricsTest, AnOldGenerationThatStillDrainsStaysVisibleByGeneration) {
  start("workers = 1", metrics_section() + slow_route("/slow", "2s"));
  int metrics = metrics_port();
  ASSERT_GT(metrics, 0);
  Client slow(port_);
  ASSERT_TRUE(slow.send(request("GET", "/slow")));
  ASSERT_TRUE(wait_until([&] { return scrape(metrics).find("shoal_connections{generation=\"1\",state=\"writing\"} 1\n") !=
                                      std::string::npos; }, 3s)) << scrape(metrics);
  shoal_->signal(SIGHUP);
  ASSERT_TRUE(shoal_->wait_for_log(R"(generation 2 ready)", 5s));
  std::string page;
  ASSERT_TRUE(wait_until([&] {
    page = scrape(metrics);
    return page.find("shoal_generation 2\n") != std::string::npos &&
           page.find("shoal_workers{generation=\"1\",state=\"draining\"} 1\n") != std::string::npos;
  }, 3s)) << page;
  EXPECT_THAT(page, HasSubstr("shoal_workers{generation=\"2\",state=\"ready\"} 1\n"));
  EXPECT_THAT(page, HasSubstr("shoal_draining 1\n"));
  EXPECT_THAT(page, HasSubstr("shoal_connections{generation=\"1\",state=\"writing\"} 1\n"));
  EXPECT_THAT(page, ::testing::ContainsRegex("shoal_generation_draining_seconds\\{generation=\"1\"\\} [0-9.]+\n"));
  EXPECT_THAT(page, HasSubstr("shoal_generation_shutdown_timeout_seconds{generation=\"1\"} 30.000\n"));
  EXPECT_THAT(page, HasSubstr("shoal_reloads_total{outcome=\"ok\"} 1\n"));
  auto answer = slow.read(1, 5s);
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_EQ(answer[0].status, 200);
  ASSERT_TRUE(wait_until([&] {
    page = scrape(metrics);
    return page.find("generation=\"1\"") == std::string::npos;
  }, 5s)) << page;
  EXPECT_THAT(page, HasSubstr("shoal_requests_total{code=\"200\"} 1\n"));  // its slow answer, folded in at its exit
  EXPECT_THAT(page, HasSubstr("shoal_draining 0\n"));
  expect_clean_log();
}

// Prometheus on loopback, scraping every second.
class Prometheus {
 public:
  Prometheus(const TempDir& dir, int target) {
    OccupiedPort free;  // a port nobody uses, released just before Prometheus binds it
    address_ = free.address();
    port_ = std::stoi(address_.substr(address_.find(':') + 1));
    std::string config = dir.write("prometheus.yml", "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                                                     "scrape_configs:\n  - job_name: shoal\n    static_configs:\n"
                                                     "      - targets: ['127.0.0.1:" + std::to_string(target) + "']\n");
    args_ = {"/usr/bin/prometheus", "--config.file=" + config, "--storage.tsdb.path=" + dir.path() + "/tsdb",
             "--web.listen-address=" + address_, "--log.level=warn"};
    log_ = dir.path() + "/prometheus.log";
  }
  void start() {
    process_ = std::make_unique<Subprocess>(args_, log_);
  }
  bool ready() {
    return wait_until([&] { return get(port_, "/-/ready", 1s).status == 200; }, 20s);
  }
  // An instant query's single value, or nullopt if it returned no series (or several).
  std::optional<double> value(const std::string& query) {
    HttpResponse r = get(port_, "/api/v1/query?query=" + url_encode(query), 5s);
    if (r.status != 200) return std::nullopt;
    auto doc = nlohmann::json::parse(r.body, nullptr, false);
    if (doc.is_discarded() || doc["status"] != "success" || doc["data"]["result"].size() != 1) return std::nullopt;
    return std::stod(doc["data"]["result"][0]["value"][1].get<std::string>());
  }
  // How many series an instant query returned; nullopt if Prometheus refused it.
  std::optional<size_t> series(const std::string& query) {
    HttpResponse r = get(port_, "/api/v1/query?query=" + url_encode(query), 5s);
    auto doc = nlohmann::json::parse(r.body, nullptr, false);
    if (r.status != 200 || doc.is_discarded() || doc["status"] != "success") return std::nullopt;
    return doc["data"]["result"].size();
  }
  // Waits until `query` has the value `expected`.
  bool wait_for(const std::string& query, double expected, std::chrono::milliseconds timeout = 10s) {
    return wait_until([&] { return value(query) == expected; }, timeout);
  }
  std::string log() const { return process_ ? process_->log() : ""; }

 private:
  std::string address_, log_;
  int port_ = 0;
  std::vector<std::string> args_;
  std::unique_ptr<Subprocess> process_;
};

TEST_F(MetricsTest, PrometheusSeesNoCounterResetThroughAReloadReplacementsAndBothUpgrades) {
  ASSERT_EQ(access("/usr/bin/prometheus", X_OK), 0) << "prometheus is missing: ./build.sh test installs it";
  const std::string keys = "workers = 2\npid_file = \"shoal.pid\"\nmax_requests = 4000\nmax_requests_jitter = 1000\n";
  const std::string section = metrics_section();
  start(keys, section);
  int metrics = metrics_port();
  ASSERT_GT(metrics, 0);
  Prometheus prometheus(dir_, metrics);
  prometheus.start();
  ASSERT_TRUE(prometheus.ready()) << prometheus.log();
  ASSERT_TRUE(prometheus.wait_for("up", 1)) << prometheus.log();

  // Two keep-alive clients and one that connects for every request, for the whole test (at most 90 s).
  LoadTally tally;
  std::atomic<bool> stop{false};
  auto until = Clock::now() + 90s;
  std::vector<std::thread> clients;
  for (bool keep_alive : {true, true, false})
    clients.emplace_back([&, keep_alive] {
      while (!stop && Clock::now() < until) client_loop(port_, keep_alive, std::min(until, Clock::now() + 200ms), tally);
    });
  auto stop_clients = [&] {
    stop = true;
    for (auto& t : clients) t.join();
    clients.clear();
  };
  struct Joiner {
    std::function<void()> f;
    ~Joiner() { f(); }
  } joiner{[&] { if (!clients.empty()) stop_clients(); }};
  auto scrapes_with = [&](const std::string& query, double value) { return prometheus.wait_for(query, value, 15s); };

  // 1. A reload.
  ASSERT_TRUE(scrapes_with("shoal_generation", 1));
  shoal_->signal(SIGHUP);
  ASSERT_TRUE(scrapes_with("shoal_generation", 2)) << shoal_->log();
  // 2. Graceful replacements: max_requests under this load replaces workers every few seconds.
  ASSERT_TRUE(shoal_->wait_for_log("replaced by pid=\\d+ \\(served \\d+ requests \\(max_requests\\)\\)", 30s)) << shoal_->log();
  ASSERT_TRUE(wait_until([&] { return prometheus.value("shoal_worker_restarts_total{reason=\"max_requests\"} > 0").has_value(); }, 15s));
  // 3. An upgrade by a new master: the counters cross to another process.
  pid_t first = shoal_->pid();
  shoal_->signal(SIGUSR2);
  ASSERT_TRUE(shoal_->wait_for_log("upgrade ok: master " + std::to_string(first) + " -> ", 15s)) << shoal_->log();
  ASSERT_TRUE(wait_until([&] { return read_pid(dir_.path() + "/shoal.pid") != first; }, 10s));
  pid_t second = read_pid(dir_.path() + "/shoal.pid");
  ASSERT_TRUE(scrapes_with("shoal_upgrades_total{outcome=\"ok\"}", 1));
  ASSERT_TRUE(shoal_->wait_exit(15s));  // the old master drained and is gone; its figures stay
  ASSERT_TRUE(scrapes_with("shoal_generation", 3));
  // 4. An upgrade in place: the same master re-executes itself.
  write_config(keys + "upgrade = \"in-place\"\n", section);
  kill(second, SIGHUP);
  ASSERT_TRUE(scrapes_with("shoal_generation", 4)) << shoal_->log();
  kill(second, SIGUSR2);
  ASSERT_TRUE(logged("upgrade ok: master " + std::to_string(second) + " in place", 15s)) << shoal_->log();
  ASSERT_TRUE(scrapes_with("shoal_generation", 5));
  ASSERT_TRUE(scrapes_with("shoal_upgrades_total{outcome=\"ok\"}", 2));

  // Every request the clients got an answer to is counted, once: scraped after the load stopped.
  stop_clients();
  expect_every_request_answered(tally, "clients through reload, replacements and upgrades", 1000);
  EXPECT_TRUE(scrapes_with("sum(shoal_requests_total)", static_cast<double>(tally.ok.load())))
      << "Prometheus: " << prometheus.value("sum(shoal_requests_total)").value_or(-1) << ", clients: " << tally.ok;
  EXPECT_EQ(prometheus.value("sum(shoal_requests_total{code!=\"200\"}) or vector(0)").value_or(-1), 0);

  // Nothing went down, and no scrape failed, over the whole run.
  for (const char* counter : {"shoal_requests_total", "shoal_response_bytes_total", "shoal_connections_accepted_total",
                              "shoal_request_duration_seconds_count", "shoal_request_duration_seconds_sum",
                              "shoal_worker_cpu_seconds_total", "shoal_reloads_total", "shoal_upgrades_total",
                              "shoal_worker_restarts_total"}) {
    std::string query = std::string("max(resets(") + counter + "[10m]))";
    EXPECT_EQ(prometheus.value(query), 0.0) << query;
  }
  EXPECT_EQ(prometheus.value("min_over_time(up[10m])"), 1.0);
  // At least one scrape saw each state: generations 1 to 5 and the counts after each upgrade.
  EXPECT_GE(prometheus.value("count_over_time(up[10m])").value_or(0), 5.0);
  EXPECT_EQ(prometheus.value("changes(shoal_generation[10m])"), 4.0);  // 1, 2, 3, 4, 5
  EXPECT_EQ(prometheus.value("shoal_reloads_total{outcome=\"ok\"}"), 2.0);
  EXPECT_EQ(prometheus.value("sum(shoal_reloads_total{outcome!=\"ok\"})"), 0.0);
  EXPECT_EQ(prometheus.value("sum(shoal_upgrades_total{outcome!=\"ok\"})"), 0.0);
  EXPECT_EQ(prometheus.value("shoal_config_last_reload_successful"), 1.0);
  EXPECT_EQ(prometheus.value("sum(shoal_workers{generation=\"5\",state=\"ready\"})"), 2.0);
  // The start time is the first master's, through both upgrades.
  EXPECT_EQ(prometheus.value("changes(shoal_start_time_seconds[10m])"), 0.0);
  EXPECT_GT(prometheus.value("sum(shoal_worker_restarts_total{reason=\"max_requests\"})").value_or(0), 0.0);
  EXPECT_EQ(prometheus.value("sum(shoal_worker_restarts_total{reason!=\"max_requests\"})"), 0.0);
  // The shipped dashboard's every query runs on what was scraped, and shows something (but the
  // draining panel: old generations drained within milliseconds, between two scrapes).
  std::ifstream file(std::string(SHOAL_SOURCE_DIR) + "/conf/grafana-dashboard.json");
  auto dashboard = nlohmann::json::parse(file, nullptr, false);
  ASSERT_FALSE(dashboard.is_discarded());
  size_t queries = 0;
  for (const auto& panel : dashboard["panels"])
    for (const auto& target : panel["targets"]) {
      std::string expr = target["expr"];
      for (auto [from, to] : {std::pair{"$__rate_interval", "5s"}, {"$__range", "10m"}, {"$instance", ".*"}})
        for (size_t at; (at = expr.find(from)) != std::string::npos;) expr.replace(at, strlen(from), to);
      auto n = prometheus.series(expr);
      ASSERT_TRUE(n) << panel["title"] << ": Prometheus refused " << expr;
      if (expr.find("draining_seconds") == std::string::npos) EXPECT_GT(*n, 0u) << panel["title"] << ": " << expr;
      ++queries;
    }
  EXPECT_GE(queries, 10u);
  std::cerr << "Prometheus scraped " << prometheus.value("count_over_time(up[10m])").value_or(0) << " times; "
            << prometheus.value("sum(shoal_worker_restarts_total)").value_or(0) << " replacements; clients got "
            << tally.ok << " answers\n";
  kill(second, SIGTERM);
}

}  // namespace
}  // namespace shoal::test
