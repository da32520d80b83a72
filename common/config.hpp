// The operator's interface: server.toml, parsed and validated in one place.
// Validation is strict and complete: every problem is reported with file:line:column and the key,
// and a config with any error is never used, so a half-configured server never starts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/duration.hpp"
#include "common/net.hpp"

namespace shoal {

struct ConfigError {
  std::string file;
  int line = 0;    // 1-based; 0 when the error concerns the file as a whole
  int column = 0;  // 1-based
  std::string message;
  std::string to_string() const;  // "file:line:column: message"
};

struct RouteConfig {
  enum class Kind { Fixed, Static, Echo, Info } kind = Kind::Fixed;
  std::string path;  // exact for Fixed and Echo; a prefix ending in '/' for Static
  int line = 0;      // where the route was declared, for messages
  // Fixed:
  int status = 200;
  std::string body;
  std::string content_type = "text/plain";
  Millis delay{0};
  // Static:
  std::string root;  // absolute
};

enum class CpuAffinity { Auto, None, List };

// [[shutdown.hook]]: a command each worker runs at cleanup time; exit status 0 is success.
struct HookConfig {
  std::string name;
  std::vector<std::string> command;
  Millis timeout{5000};
  int line = 0;
};

// [app]: each worker slot execs this program instead of serving HTTP itself, and hands it the
// listening sockets and the lifecycle through systemd's protocol (LISTEN_FDS, NOTIFY_SOCKET).
struct AppConfig {
  enum class Ready { Notify, Fd, Delay };
  std::vector<std::string> command;  // argv; argv[0] is looked up in PATH when it has no '/'
  std::string cwd;                   // absolute; the config file's directory by default
  std::vector<std::pair<std::string, std::string>> env;  // added to (or replacing in) shoal's own environment
  Ready ready = Ready::Notify;
  Millis ready_delay{0};             // Ready::Delay only: a guess, said so in the log
  int drain_signal = 15;             // SIGTERM
  std::string drain_signal_name = "SIGTERM";
  Millis watchdog{0};                // WATCHDOG_USEC: silent this long after READY=1 is stuck; 0 = off
};
const char* ready_name(AppConfig::Ready ready);

struct Config {
  std::string file;      // the path as given
  std::string base_dir;  // directory of the file: relative paths in it are resolved against this

  struct Server {
    std::vector<ListenAddress> listen;
    int backlog = 1024;
    int workers = 1;             // resolved: "auto" becomes the number of allowed CPUs
    bool workers_auto = true;
    CpuAffinity cpu_affinity = CpuAffinity::Auto;
    std::vector<int> cpu_list;   // for CpuAffinity::List
    std::vector<int> allowed_cpus;  // resolved: this process's affinity mask when the file was read
    std::string pid_file;        // absolute, or empty
    std::string control_socket;  // absolute, or empty (no control socket: the CLI cannot reach it)
    // Privilege drop: workers switch to this user and group before they serve. Empty user: the
    // workers keep the master's identity, which as root is refused unless user = "root".
    std::string user, group;
    uint32_t uid = 0, gid = 0;   // resolved from user and group (group defaults to the user's own)
    Millis heartbeat_timeout{30'000};  // a worker silent this long is killed and replaced
    uint64_t max_requests = 0;         // a worker that served this many is replaced gracefully; 0 = never
    uint64_t max_requests_jitter = 0;  // plus a random 0..jitter per worker, so they do not all recycle at once
    uint64_t max_worker_rss = 0;       // bytes; a worker above it is replaced gracefully; 0 = never
    // How SIGUSR2 / `shoal upgrade` starts the new program: beside this master, as a new master
    // process that takes over and lets this one exit (NewMaster); or in this very process
    // (InPlace: the master re-executes itself, keeps its pid and adopts its running workers).
    enum class Upgrade { NewMaster, InPlace } upgrade = Upgrade::NewMaster;
  } server;

  struct Shutdown {
    Millis drain_delay{0};
    Millis timeout{30'000};
    Millis idle_grace{250};
    // Streaming responses and long-polls: from the drain's start, shoal ends the streams still
    // open at stream_grace itself (chunked terminator, then close). Within timeout; by default
    // 5 s, or half of a shorter timeout.
    Millis stream_grace{5000};
    // The drain notices (or shoal's own ends) of open streams are spread evenly over this window
    // from the drain's start, so that their clients do not all reconnect in one millisecond.
    Millis stream_close_spread{1000};
    // The same for idle keep-alive connections (each still waits out idle_grace); 0: off.
    Millis idle_close_spread{0};
    std::vector<HookConfig> hooks;  // each worker's, after its drain: in file order; run in reverse
    // The master's, once, when the server really stops (not at a reload, a worker's replacement
    // or an upgrade's hand-over), after the last worker exited: in file order.
    std::vector<HookConfig> server_hooks;
  } shutdown;

  struct Reload {
    Millis ready_timeout{10'000};  // a new generation not ready by then is stopped; the old one serves on
    // Generations left draining at once: a reload that would leave more first hurries the oldest
    // (its streams end now, its workers are killed at now + stream_grace).
    int max_draining_generations = 2;
  } reload;

  struct Http {
    size_t max_header_bytes = 16384;
    size_t max_url_bytes = 8192;
    size_t max_header_fields = 100;       // header (and trailer) fields in one request
    size_t max_chunk_ext_bytes = 4096;    // chunk extensions, summed over one request's chunks
    size_t max_body_bytes = 1048576;
    Millis header_timeout{10'000};
    Millis keepalive_timeout{60'000};
    Millis body_timeout{60'000};  // between two reads of a request body
    Millis send_timeout{60'000};  // between two writes that make progress to a client that does not read
    int max_connections = 10000;
    // Peers whose X-Forwarded-For / Forwarded are believed (the right-most untrusted address in
    // them becomes the client's); empty: nobody's.
    std::vector<Cidr> trusted_proxies;
  } http;

  struct Health {
    std::string liveness_path = "/healthz";
    std::string readiness_path = "/readyz";
  } health;

  struct Log {
    std::string level = "info";
    std::string file;        // absolute, or empty for stderr
    std::string access_log;  // absolute, or empty for off
    // One line per response: nginx's and Apache's "combined", or one JSON object per line.
    enum class AccessFormat { Combined, Json } access_log_format = AccessFormat::Combined;
  } log;

  // [metrics]: Prometheus's text format on a listener of its own ([metrics] listen, kept in
  // server.listen, last, with metrics set), off unless it is set.
  struct Metrics {
    std::string path = "/metrics";
  } metrics;
  const ListenAddress* metrics_listen() const {
    return !server.listen.empty() && server.listen.back().metrics ? &server.listen.back() : nullptr;
  }

  std::vector<RouteConfig> routes;

  // Set: the workers exec this program (see AppConfig); [http], [health], [[route]] and
  // [[shutdown.hook]] are then the app's business and refused here.
  std::optional<AppConfig> app;

  // The CPU worker `index` is pinned to, or -1 for none.
  int cpu_for_worker(int index) const;
};

struct ConfigResult {
  std::optional<Config> config;
  std::vector<ConfigError> errors;  // empty exactly when config is set
};

// Reads and validates a file.
ConfigResult load_config_file(const std::string& path);

// Validates config text; `file` names it in messages and its directory anchors relative paths.
ConfigResult parse_config(std::string_view text, const std::string& file);

// Why this process may not start workers with this config's [server] user, or nothing: as root,
// workers run as root only when user = "root" says so. (Not as root, user cannot be switched to
// and is ignored with a warning, as nginx does, so that a developer can run the same file.)
std::optional<std::string> identity_problem(const Config& config);

// What would stop a start (or a reload) with this config short of binding its ports, as nginx -t
// checks it: identity_problem(), a control socket, pid file or unix socket whose directory this
// process cannot write, a log file it cannot append to, an [app] command that is not an executable
// file (looked up in PATH as exec does). Empty: nothing. `shoal -t`, the start and every reload run it.
std::vector<std::string> start_problems(const Config& config);

// The config as shoal uses it, every default filled in, as a TOML file that reads back to the same
// config (`shoal -T`, as nginx -T prints what nginx runs with). Paths are absolute.
std::string effective_config(const Config& config);

// Why `next` may not replace `running` on reload (what the master holds from its start), or
// nothing: [server] pid_file, [server] control_socket and [log] file.
std::optional<std::string> reload_refusal(const Config& running, const Config& next);

// Where the control socket is when the config does not say: "shoal.ctl" beside the config file.
std::string default_control_socket(const std::string& base_dir);

// The known key closest to `key` by edit distance, or "" if none is close enough to be a typo.
std::string closest_key(std::string_view key, const std::vector<std::string_view>& known);

}  // namespace shoal
