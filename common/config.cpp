#include "common/config.hpp"

#include <errno.h>
#include <grp.h>
#include <unistd.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <tuple>
#include <toml++/toml.h>

#include "common/log.hpp"
#include "common/sys.hpp"

namespace shoal {
namespace {

// listen entries' proxy_protocol, as written in the config and printed by -T.
constexpr std::pair<const char*, ProxyProtocol> kProxyModes[] = {
    {"off", ProxyProtocol::Off}, {"v1", ProxyProtocol::V1}, {"v2", ProxyProtocol::V2}, {"any", ProxyProtocol::Any}};

}  // namespace

std::string ConfigError::to_string() const {
  if (line == 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

int Config::cpu_for_worker(int index) const {
  switch (server.cpu_affinity) {
    case CpuAffinity::None: return -1;
    case CpuAffinity::List: return server.cpu_list[static_cast<size_t>(index) % server.cpu_list.size()];
    case CpuAffinity::Auto: {
      const auto& cpus = server.allowed_cpus;
      return cpus.empty() ? -1 : cpus[static_cast<size_t>(index) % cpus.size()];
    }
  }
  return -1;
}

std::optional<std::string> identity_problem(const Config& config) {
  if (geteuid() == 0 && config.server.user.empty())
    return config.file + ": [server] user is not set, and shoal runs as root: refusing to run workers as root. Set "
           "user = \"www-data\" (or another unprivileged user) for the workers, or user = \"root\" to run them as "
           "root deliberately";
  return std::nullopt;
}

std::vector<std::string> start_problems(const Config& config) {
  std::vector<std::string> out;
  if (auto problem = identity_problem(config)) out.push_back(*problem);
  auto say = [&](const std::string& what, const std::string& why) { out.push_back(config.file + ": " + what + ": " + why); };
  auto directory_writable = [&](const std::string& path, const std::string& what) {
    if (path.empty()) return;
    std::string dir = std::filesystem::path(path).parent_path().string();
    if (access(dir.c_str(), W_OK | X_OK) != 0)
      say(what, "cannot create " + path + ": its directory is not writable by this process (" + errno_text(errno) + ")");
  };
  auto appendable = [&](const std::string& path, const std::string& what) {
    if (path.empty()) return;
    if (access(path.c_str(), F_OK) != 0) return directory_writable(path, what);
    if (access(path.c_str(), W_OK) != 0) say(what, "cannot write to " + path + " (" + errno_text(errno) + ")");
  };
  directory_writable(config.server.control_socket, "[server] control_socket");
  directory_writable(config.server.pid_file, "[server] pid_file");
  for (const ListenAddress& a : config.server.listen)
    if (a.kind == ListenAddress::Kind::Unix) directory_writable(a.unix_path, "[server] listen \"" + a.text + "\"");
  appendable(config.log.file, "[log] file");
  appendable(config.log.access_log, "[log] access_log");
  if (config.app && !config.app->command.empty()) {
    // What execvp would run: a name with a '/' as it is (from cwd), any other through PATH.
    const std::string& name = config.app->command[0];
    std::vector<std::string> candidates;
    if (name.find('/') != std::string::npos) {
      candidates.push_back(name[0] == '/' ? name : config.app->cwd + "/" + name);
    } else {
      const char* path = getenv("PATH");
      std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
      for (size_t start = 0; start <= dirs.size();) {
        size_t colon = dirs.find(':', start);
        std::string dir = dirs.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
        candidates.push_back((dir.empty() ? "." : dir) + "/" + name);
        if (colon == std::string::npos) break;
        start = colon + 1;
      }
    }
    bool found = std::any_of(candidates.begin(), candidates.end(), [](const std::string& c) {
      struct stat st;
      return access(c.c_str(), X_OK) == 0 && stat(c.c_str(), &st) == 0 && S_ISREG(st.st_mode);
    });
    if (!found)
      say("[app] command", "'" + name + "' is not an executable file" +
                               (name.find('/') != std::string::npos ? std::string(" (from ") + config.app->cwd + ")"
                                                                     : std::string(" in PATH (") + (getenv("PATH") ? getenv("PATH") : "") + ")"));
  }
  return out;
}

std::string effective_config(const Config& c) {
  auto duration = [](Millis d) { return format_duration(d); };
  auto strings = [](const std::vector<std::string>& items) {
    toml::array out;
    for (const auto& item : items) out.push_back(item);
    return out;
  };
  toml::table root;
  toml::array listen;
  for (const ListenAddress& a : c.server.listen) {
    if (a.metrics) continue;
    const char* mode = std::find_if(std::begin(kProxyModes), std::end(kProxyModes),
                                    [&](const auto& m) { return m.second == a.proxy_protocol; })->first;
    listen.push_back(toml::table{{"address", a.text}, {"proxy_protocol", mode},
                                 {"name", a.name}});
  }
  toml::table server{{"listen", listen},
                     {"backlog", c.server.backlog},
                     {"workers", c.server.workers},
                     {"pid_file", c.server.pid_file},
                     {"control_socket", c.server.control_socket},
                     {"max_worker_rss", static_cast<int64_t>(c.server.max_worker_rss)},
                     {"upgrade", c.server.upgrade == Config::Server::Upgrade::InPlace ? "in-place" : "new-master"}};
  if (!c.server.user.empty()) server.insert("user", c.server.user);  // none: the master's own
  if (!c.server.user.empty() && !c.server.group.empty()) server.insert("group", c.server.group);
  if (c.server.cpu_affinity == CpuAffinity::List) {
    toml::array cpus;
    for (int cpu : c.server.cpu_list) cpus.push_back(cpu);
    server.insert("cpu_affinity", cpus);
  } else {
    server.insert("cpu_affinity", c.server.cpu_affinity == CpuAffinity::Auto ? "auto" : "none");
  }
  if (!c.app) {
    server.insert("heartbeat_timeout", duration(c.server.heartbeat_timeout));
    server.insert("max_requests", static_cast<int64_t>(c.server.max_requests));
    server.insert("max_requests_jitter", static_cast<int64_t>(c.server.max_requests_jitter));
  }
  root.insert("server", server);
  toml::table shutdown{{"drain_delay", duration(c.shutdown.drain_delay)},
                       {"timeout", duration(c.shutdown.timeout)},
                       {"idle_grace", duration(c.shutdown.idle_grace)},
                       {"stream_grace", duration(c.shutdown.stream_grace)},
                       {"stream_close_spread", duration(c.shutdown.stream_close_spread)},
                       {"idle_close_spread", duration(c.shutdown.idle_close_spread)}};
  if (!c.shutdown.hooks.empty()) {
    toml::array hooks;
    for (const HookConfig& h : c.shutdown.hooks)
      hooks.push_back(toml::table{{"name", h.name}, {"command", strings(h.command)}, {"timeout", duration(h.timeout)}});
    shutdown.insert("hook", hooks);
  }
  if (!c.shutdown.server_hooks.empty()) {
    toml::array hooks;
    for (const HookConfig& h : c.shutdown.server_hooks)
      hooks.push_back(toml::table{{"name", h.name}, {"command", strings(h.command)}, {"timeout", duration(h.timeout)}});
    shutdown.insert("server_hook", hooks);
  }
  root.insert("shutdown", shutdown);
  root.insert("reload", toml::table{{"ready_timeout", duration(c.reload.ready_timeout)},
                                    {"max_draining_generations", c.reload.max_draining_generations}});
  if (const ListenAddress* metrics = c.metrics_listen())
    root.insert("metrics", toml::table{{"listen", metrics->text}, {"path", c.metrics.path}});
  root.insert("log", toml::table{{"level", c.log.level}, {"file", c.log.file}, {"access_log", c.log.access_log},
                                 {"access_log_format", c.log.access_log_format == Config::Log::AccessFormat::Json
                                                           ? "json" : "combined"}});
  if (c.app) {
    toml::table env;
    for (const auto& [name, value] : c.app->env) env.insert(name, value);
    toml::table app{{"command", strings(c.app->command)}, {"cwd", c.app->cwd}, {"env", env},
                    {"ready", ready_name(c.app->ready)}, {"drain_signal", c.app->drain_signal_name},
                    {"watchdog", duration(c.app->watchdog)}};
    if (c.app->ready == AppConfig::Ready::Delay) app.insert("ready_delay", duration(c.app->ready_delay));
    root.insert("app", app);
  } else {
    toml::array proxies;
    for (const Cidr& cidr : c.http.trusted_proxies) proxies.push_back(cidr.to_string());
    root.insert("http", toml::table{{"max_header_bytes", static_cast<int64_t>(c.http.max_header_bytes)},
                                    {"max_url_bytes", static_cast<int64_t>(c.http.max_url_bytes)},
                                    {"max_header_fields", static_cast<int64_t>(c.http.max_header_fields)},
                                    {"max_chunk_ext_bytes", static_cast<int64_t>(c.http.max_chunk_ext_bytes)},
                                    {"max_body_bytes", static_cast<int64_t>(c.http.max_body_bytes)},
                                    {"header_timeout", duration(c.http.header_timeout)},
                                    {"keepalive_timeout", duration(c.http.keepalive_timeout)},
                                    {"body_timeout", duration(c.http.body_timeout)},
                                    {"send_timeout", duration(c.http.send_timeout)},
                                    {"max_connections", c.http.max_connections},
                                    {"trusted_proxies", proxies}});
    root.insert("health", toml::table{{"liveness_path", c.health.liveness_path}, {"readiness_path", c.health.readiness_path}});
    toml::array routes;
    for (const RouteConfig& r : c.routes) {
      toml::table route{{"path", r.path}};
      switch (r.kind) {
        case RouteConfig::Kind::Static: route.insert("root", r.root); break;
        case RouteConfig::Kind::Echo: route.insert("handler", "echo"); break;
        case RouteConfig::Kind::Info: route.insert("handler", "info"); break;
        case RouteConfig::Kind::Fixed:
          route.insert("status", r.status);
          route.insert("body", r.body);
          route.insert("content_type", r.content_type);
          route.insert("delay", duration(r.delay));
          break;
      }
      routes.push_back(route);
    }
    if (!routes.empty()) root.insert("route", routes);
  }
  std::ostringstream out;
  out << "# " << c.file << " as shoal uses it: every default filled in, paths absolute (shoal -T)\n" << root << "\n";
  return out.str();
}

std::optional<std::string> reload_refusal(const Config& running, const Config& next) {
  auto refuse = [](const char* key, const char* why) {
    return std::string(key) + " cannot change on reload (" + why + "); restart shoal to change it";
  };
  if (running.server.pid_file != next.server.pid_file) return refuse("[server] pid_file", "the master wrote it at start");
  if (running.server.control_socket != next.server.control_socket)
    return refuse("[server] control_socket", "the master listens on it");
  if (running.log.file != next.log.file) return refuse("[log] file", "the master holds it open");
  return std::nullopt;
}

const char* ready_name(AppConfig::Ready ready) {
  switch (ready) {
    case AppConfig::Ready::Notify: return "notify";
    case AppConfig::Ready::Fd: return "fd";
    case AppConfig::Ready::Delay: return "delay";
  }
  return "?";
}

std::string default_control_socket(const std::string& base_dir) { return base_dir + "/shoal.ctl"; }

std::string closest_key(std::string_view key, const std::vector<std::string_view>& known) {
  std::string_view best;
  size_t best_distance = SIZE_MAX;
  for (std::string_view candidate : known) {
    // Levenshtein distance with adjacent transpositions counted as one edit ("wrokers").
    const size_t n = key.size(), m = candidate.size();
    std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
    for (size_t i = 0; i <= n; ++i) d[i][0] = i;
    for (size_t j = 0; j <= m; ++j) d[0][j] = j;
    for (size_t i = 1; i <= n; ++i)
      for (size_t j = 1; j <= m; ++j) {
        size_t cost = key[i - 1] == candidate[j - 1] ? 0 : 1;
        d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
        if (i > 1 && j > 1 && key[i - 1] == candidate[j - 2] && key[i - 2] == candidate[j - 1])
          d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    if (d[n][m] < best_distance) best_distance = d[n][m], best = candidate;
  }
  size_t allowed = std::max<size_t>(2, key.size() / 3);
  return best_distance <= allowed ? std::string(best) : std::string();
}

namespace {

using Keys = std::vector<std::string_view>;

// What a loop reads when the key holds the wrong type (its error is reported already). Not a
// temporary: `list ? *list : toml::array{}` would copy the list, and a copy's nodes have no
// source position, so their errors would lose their line and column.
const toml::array kNoItems;
const toml::table kNoKeys;

const char* type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    default: return "a date or time";
  }
}

bool is_directory(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Reads one validated Config out of a parsed TOML table, collecting every error on the way.
class Loader {
 public:
  Loader(std::string file, std::string base_dir) : file_(std::move(file)), base_dir_(std::move(base_dir)) {}

  std::vector<ConfigError> errors;

  void error(const toml::source_region& where, std::string message) {
    errors.push_back({file_, static_cast<int>(where.begin.line), static_cast<int>(where.begin.column),
                      std::move(message)});
  }

  void check_keys(const toml::table& table, const std::string& section, const Keys& known) {
    for (auto&& [key, node] : table) {
      if (std::find(known.begin(), known.end(), key.str()) != known.end()) continue;
      std::string message = "unknown key '" + std::string(key.str()) + "' in " + section;
      if (auto hint = closest_key(key.str(), known); !hint.empty())
        message += "; did you mean '" + hint + "'?";
      error(key.source(), message);
    }
  }

  // A sub-table such as [server]; nullptr (and an error) when the key holds something else.
  const toml::table* section(const toml::table& root, std::string_view name) {
    const toml::node* node = root.get(name);
    if (!node) return nullptr;
    if (auto* table = node->as_table()) return table;
    error(node->source(), "'" + std::string(name) + "' must be a table ([" + std::string(name) +
                              "]), got " + type_name(*node));
    return nullptr;
  }

  void read_string(const toml::table& t, const std::string& where, std::string_view key, std::string& out) {
    const toml::node* node = t.get(key);
    if (!node) return;
    if (auto* s = node->as_string()) out = s->get();
    else error(node->source(), where + " " + std::string(key) + ": expected a string, got " + type_name(*node));
  }

  template <typename Int>
  void read_int(const toml::table& t, const std::string& where, std::string_view key, int64_t min,
                int64_t max, Int& out) {
    const toml::node* node = t.get(key);
    if (!node) return;
    auto* i = node->as_integer();
    if (!i) {
      error(node->source(), where + " " + std::string(key) + ": expected an integer, got " + type_name(*node));
      return;
    }
    int64_t value = i->get();
    if (value < min || value > max) {
      error(node->source(), where + " " + std::string(key) + ": " + std::to_string(value) +
                                " is out of range (" + std::to_string(min) + " to " + std::to_string(max) + ")");
      return;
    }
    out = static_cast<Int>(value);
  }

  void read_duration(const toml::table& t, const std::string& where, std::string_view key, Millis min,
                     Millis max, Millis& out) {
    const toml::node* node = t.get(key);
    if (!node) return;
    auto* s = node->as_string();
    std::optional<Millis> value = s ? parse_duration(s->get()) : std::nullopt;
    if (!value) {
      std::string got = s ? "\"" + s->get() + "\"" : std::string(type_name(*node));
      error(node->source(), where + " " + std::string(key) +
                                ": expected a duration such as \"250ms\", \"10s\" or \"2m\", got " + got);
      return;
    }
    if (*value < min || *value > max) {
      error(node->source(), where + " " + std::string(key) + ": " + format_duration(*value) +
                                " is out of range (" + format_duration(min) + " to " + format_duration(max) + ")");
      return;
    }
    out = *value;
  }

  // A path relative to the config file's directory, made absolute; its directory must exist.
  void read_path(const toml::table& t, const std::string& where, std::string_view key, std::string& out) {
    std::string value;
    read_string(t, where, key, value);
    if (value.empty()) return;
    std::string path = value[0] == '/' ? value : base_dir_ + "/" + value;
    path = std::filesystem::path(path).lexically_normal().string();
    std::string dir = std::filesystem::path(path).parent_path().string();
    if (!is_directory(dir)) {
      error(t.get(key)->source(), where + " " + std::string(key) + ": directory " + dir + " does not exist");
      return;
    }
    out = path;
  }

  Config load(const toml::table& root) {
    root_ = &root;
    Config config;
    config.base_dir = base_dir_;
    check_keys(root, "the top level", {"server", "shutdown", "reload", "http", "health", "log", "route", "app", "metrics"});
    if (auto* t = section(root, "server")) load_server(*t, config.server);
    if (auto* t = section(root, "shutdown")) load_shutdown(*t, config.shutdown);
    if (auto* t = section(root, "reload")) {
      check_keys(*t, "[reload]", {"ready_timeout", "max_draining_generations"});
      read_duration(*t, "[reload]", "ready_timeout", Millis(1), Millis(3'600'000), config.reload.ready_timeout);
      read_int(*t, "[reload]", "max_draining_generations", 1, 64, config.reload.max_draining_generations);
    }
    if (auto* t = section(root, "http")) load_http(*t, config.http);
    if (auto* t = section(root, "health")) load_health(*t, config.health);
    if (auto* t = section(root, "log")) load_log(*t, config.log);
    if (auto* t = section(root, "metrics")) load_metrics(*t, config);
    load_routes(root, config);
    if (auto* t = section(root, "app")) load_app(*t, config);
    check_across(root, config);
    if (!root.get("server"))
      errors.push_back({file_, 1, 1, "[server] is missing: shoal needs at least [server] listen"});
    return config;
  }

 private:
  void load_server(const toml::table& t, Config::Server& s) {
    const std::string where = "[server]";
    check_keys(t, where, {"listen", "backlog", "workers", "cpu_affinity", "pid_file", "control_socket", "user", "group",
                          "heartbeat_timeout", "max_requests", "max_requests_jitter", "max_worker_rss", "upgrade"});
    if (const toml::node* node = t.get("listen")) {
      const toml::array* list = node->as_array();
      if (!list) {
        error(node->source(), "[server] listen: expected an array of addresses such as [\"127.0.0.1:8080\"], got " +
                                  std::string(type_name(*node)));
      } else if (list->empty()) {
        error(node->source(), "[server] listen: the list is empty: shoal would accept no connection");
      }
      for (const toml::node& item : list ? *list : kNoItems) {
        // "127.0.0.1:8080", or { address = "127.0.0.1:8080", proxy_protocol = "v2" }.
        const toml::node* address_node = &item;
        ProxyProtocol proxy = ProxyProtocol::Off;
        if (const toml::table* entry = item.as_table()) {
          check_keys(*entry, "[server] listen entry", {"address", "proxy_protocol", "name"});
          address_node = entry->get("address");
          if (!address_node) {
            error(item.source(), "[server] listen: a table entry needs address = \"host:port\"");
            continue;
          }
          if (const toml::node* mode = entry->get("proxy_protocol")) {
            auto* name = mode->as_string();
            auto found = std::find_if(std::begin(kProxyModes), std::end(kProxyModes),
                                      [&](const auto& m) { return name && name->get() == m.first; });
            if (found == std::end(kProxyModes)) {
              error(mode->source(), "[server] listen: proxy_protocol must be \"off\", \"v1\", \"v2\" or \"any\"");
              continue;
            }
            proxy = found->second;
          }
        }
        auto address = read_address(*address_node, "[server] listen", "a string or { address = ..., proxy_protocol = ... }");
        if (!address) continue;
        const std::string& text = address->text;
        address->proxy_protocol = proxy;
        if (const toml::table* entry = item.as_table(); entry && entry->get("name")) {
          // systemd's rule for FileDescriptorName=: printable ASCII without ':', at most 255.
          auto* name = entry->get("name")->as_string();
          bool ok = name && !name->get().empty() && name->get().size() <= 255 &&
                    std::all_of(name->get().begin(), name->get().end(), [](char c) { return c > ' ' && c < 127 && c != ':'; });
          if (!ok) {
            error(entry->get("name")->source(), "[server] listen: name must be 1 to 255 printable characters without "
                                                "':' or spaces (it becomes LISTEN_FDNAMES)");
            continue;
          }
          address->name = name->get();
        }
        bool duplicate = std::any_of(s.listen.begin(), s.listen.end(), [&](const ListenAddress& a) {
          return a.addr_len == address->addr_len && memcmp(&a.addr, &address->addr, a.addr_len) == 0;
        });
        if (duplicate) error(item.source(), "[server] listen: \"" + text + "\" is listed twice");
        else s.listen.push_back(std::move(*address));
      }
    } else {
      error(t.source(), "[server] listen is missing: shoal would accept no connection");
    }
    read_int(t, where, "backlog", 1, 65535, s.backlog);

    const auto cpus = allowed_cpus();
    s.allowed_cpus = cpus;
    if (const toml::node* node = t.get("workers")) {
      if (auto* text = node->as_string(); text && text->get() == "auto") {
        s.workers_auto = true;
      } else if (node->is_integer()) {
        s.workers_auto = false;
        read_int(t, where, "workers", 1, 1024, s.workers);
      } else {
        error(node->source(), "[server] workers: expected an integer from 1 to 1024 or \"auto\", got " +
                                  (text ? "\"" + text->get() + "\"" : std::string(type_name(*node))));
      }
    }
    if (s.workers_auto) s.workers = std::max<int>(1, static_cast<int>(cpus.size()));

    if (const toml::node* node = t.get("cpu_affinity")) {
      if (auto* text = node->as_string()) {
        if (text->get() == "auto") s.cpu_affinity = CpuAffinity::Auto;
        else if (text->get() == "none") s.cpu_affinity = CpuAffinity::None;
        else error(node->source(), "[server] cpu_affinity: expected \"auto\", \"none\" or a list of CPUs, got \"" +
                                       text->get() + "\"");
      } else if (auto* list = node->as_array()) {
        s.cpu_affinity = CpuAffinity::List;
        if (list->empty()) error(node->source(), "[server] cpu_affinity: the list of CPUs is empty");
        for (const toml::node& item : *list) {
          auto* cpu = item.as_integer();
          if (!cpu) {
            error(item.source(), "[server] cpu_affinity: expected a CPU number, got " + std::string(type_name(item)));
          } else if (std::find(cpus.begin(), cpus.end(), cpu->get()) == cpus.end()) {
            error(item.source(), "[server] cpu_affinity: CPU " + std::to_string(cpu->get()) +
                                     " is not in this process's affinity mask (" + format_cpu_list(cpus) + ")");
          } else {
            s.cpu_list.push_back(static_cast<int>(cpu->get()));
          }
        }
      } else {
        error(node->source(), "[server] cpu_affinity: expected \"auto\", \"none\" or a list of CPUs, got " +
                                  std::string(type_name(*node)));
      }
    }
    read_path(t, where, "pid_file", s.pid_file);
    if (!t.get("control_socket")) s.control_socket = default_control_socket(base_dir_);
    read_path(t, where, "control_socket", s.control_socket);
    sockaddr_un sun;
    if (s.control_socket.size() >= sizeof sun.sun_path)
      error(t.get("control_socket") ? t.get("control_socket")->source() : t.source(),
            "[server] control_socket: the path " + s.control_socket + " is longer than " +
                std::to_string(sizeof sun.sun_path - 1) + " bytes");
    load_identity(t, s);
    read_duration(t, where, "heartbeat_timeout", Millis(100), Millis(3'600'000), s.heartbeat_timeout);
    read_int(t, where, "max_requests", 0, int64_t{1} << 40, s.max_requests);
    read_int(t, where, "max_requests_jitter", 0, int64_t{1} << 40, s.max_requests_jitter);
    read_int(t, where, "max_worker_rss", 0, int64_t{1} << 44, s.max_worker_rss);
    if (const toml::node* node = t.get("upgrade")) {
      const auto* text = node->as_string();
      if (text && text->get() == "new-master") s.upgrade = Config::Server::Upgrade::NewMaster;
      else if (text && text->get() == "in-place") s.upgrade = Config::Server::Upgrade::InPlace;
      else error(node->source(), "[server] upgrade: expected \"new-master\" or \"in-place\", got " +
                                     (text ? "\"" + text->get() + "\"" : std::string(type_name(*node))));
    }
    if (s.max_worker_rss > 0 && s.max_worker_rss < (1u << 20))
      error(t.get("max_worker_rss")->source(), "[server] max_worker_rss: " + std::to_string(s.max_worker_rss) +
                                                   " bytes is below 1 MiB, less than an idle worker needs");
    if (s.max_requests_jitter > 0 && s.max_requests == 0)
      error(t.get("max_requests_jitter")->source(), "[server] max_requests_jitter needs max_requests");
  }

  // Runs a get*nam_r lookup, growing its buffer while the entry does not fit (a group with many
  // members can take more than any fixed size), so that a big entry is not taken for a missing one.
  template <typename Lookup>
  static void lookup_entry(std::vector<char>& buf, Lookup lookup) {
    buf.resize(16384);
    while (lookup() == ERANGE && buf.size() < (size_t{1} << 26)) buf.resize(buf.size() * 2);
  }

  // user and group, resolved now so that `shoal -t` already reports a name that does not exist.
  void load_identity(const toml::table& t, Config::Server& s) {
    read_string(t, "[server]", "user", s.user);
    read_string(t, "[server]", "group", s.group);
    if (t.get("user") && s.user.empty()) error(t.get("user")->source(), "[server] user: the name is empty");
    if (t.get("group") && s.user.empty())
      error(t.get("group")->source(), "[server] group needs user: workers switch group only along with their user");
    if (s.user.empty()) return;
    std::vector<char> buf;
    passwd pw, *found = nullptr;
    lookup_entry(buf, [&] { return getpwnam_r(s.user.c_str(), &pw, buf.data(), buf.size(), &found); });
    if (!found) {
      error(t.get("user")->source(), "[server] user: no user named '" + s.user + "' on this system");
      return;
    }
    s.uid = found->pw_uid;
    s.gid = found->pw_gid;
    if (s.group.empty()) return;
    group gr, *gfound = nullptr;
    lookup_entry(buf, [&] { return getgrnam_r(s.group.c_str(), &gr, buf.data(), buf.size(), &gfound); });
    if (!gfound) error(t.get("group")->source(), "[server] group: no group named '" + s.group + "' on this system");
    else s.gid = gfound->gr_gid;
  }

  void load_shutdown(const toml::table& t, Config::Shutdown& s) {
    const std::string where = "[shutdown]";
    check_keys(t, where, {"drain_delay", "timeout", "idle_grace", "stream_grace", "stream_close_spread",
                          "idle_close_spread", "hook", "server_hook"});
    read_duration(t, where, "drain_delay", Millis(0), Millis(3'600'000), s.drain_delay);
    read_duration(t, where, "timeout", Millis(1), Millis(3'600'000), s.timeout);
    read_duration(t, where, "idle_grace", Millis(0), Millis(60'000), s.idle_grace);
    // Unset, the stream grace follows a short timeout down: half of it, at most 5 s.
    s.stream_grace = std::min(s.stream_grace, s.timeout / 2);
    read_duration(t, where, "stream_grace", Millis(0), Millis(3'600'000), s.stream_grace);
    s.stream_close_spread = std::min(s.stream_close_spread, s.stream_grace);
    read_duration(t, where, "stream_close_spread", Millis(0), Millis(3'600'000), s.stream_close_spread);
    read_duration(t, where, "idle_close_spread", Millis(0), Millis(60'000), s.idle_close_spread);
    if (s.stream_grace >= s.timeout && t.get("stream_grace"))
      error(t.get("stream_grace")->source(), "[shutdown] stream_grace (" + format_duration(s.stream_grace) +
                                                 ") must be shorter than [shutdown] timeout (" +
                                                 format_duration(s.timeout) + "): streams end before the deadline kills their worker");
    if (s.stream_close_spread > s.stream_grace && t.get("stream_close_spread"))
      error(t.get("stream_close_spread")->source(),
            "[shutdown] stream_close_spread (" + format_duration(s.stream_close_spread) +
                ") must be at most [shutdown] stream_grace (" + format_duration(s.stream_grace) +
                "): shoal ends every stream still open at stream_grace");
    load_hooks(t, "hook", s.hooks);
    load_hooks(t, "server_hook", s.server_hooks);
  }

  // [[shutdown.hook]] (each worker's) or [[shutdown.server_hook]] (the master's, once).
  void load_hooks(const toml::table& shutdown, const std::string& key, std::vector<HookConfig>& hooks) {
    const toml::node* node = shutdown.get(key);
    if (!node) return;
    const std::string kind = "[[shutdown." + key + "]]";
    const toml::array* list = node->as_array();
    if (!list || !list->is_array_of_tables()) {
      error(node->source(), "[shutdown] " + key + " must be written as " + kind + " tables, one per hook");
      return;
    }
    for (const toml::node& item : *list) {
      const toml::table& t = *item.as_table();
      HookConfig hook;
      hook.line = static_cast<int>(t.source().begin.line);
      std::string where = kind + " at line " + std::to_string(hook.line);
      check_keys(t, where, {"name", "command", "timeout"});
      read_string(t, where, "name", hook.name);
      if (hook.name.empty()) error(t.source(), where + ": name is missing (it names the hook in the log)");
      for (const HookConfig& other : hooks)
        if (!hook.name.empty() && other.name == hook.name)
          error(t.get("name")->source(), where + ": duplicate hook name '" + hook.name + "' (first declared at line " +
                                             std::to_string(other.line) + ")");
      const toml::node* command = t.get("command");
      const toml::array* argv = command ? command->as_array() : nullptr;
      if (!argv || argv->empty()) {
        error(command ? command->source() : t.source(),
              where + " command: expected a non-empty array of strings such as [\"/usr/bin/flush\", \"--all\"]");
      } else {
        for (const toml::node& arg : *argv) {
          if (auto* text = arg.as_string()) hook.command.push_back(text->get());
          else error(arg.source(), where + " command: expected a string, got " + std::string(type_name(arg)));
        }
      }
      read_duration(t, where, "timeout", Millis(1), Millis(3'600'000), hook.timeout);
      hooks.push_back(std::move(hook));
    }
  }

  void load_app(const toml::table& t, Config& config) {
    const std::string where = "[app]";
    check_keys(t, where, {"command", "cwd", "env", "ready", "ready_delay", "drain_signal", "watchdog"});
    AppConfig app;
    const toml::node* command = t.get("command");
    const toml::array* argv = command ? command->as_array() : nullptr;
    if (!argv || argv->empty()) {
      error(command ? command->source() : t.source(),
            "[app] command: expected a non-empty array of strings such as [\"node\", \"server.js\"]");
    } else {
      for (const toml::node& arg : *argv) {
        if (auto* text = arg.as_string()) app.command.push_back(text->get());
        else error(arg.source(), "[app] command: expected a string, got " + std::string(type_name(arg)));
      }
    }
    app.cwd = base_dir_;
    if (t.get("cwd")) {
      std::string cwd;
      read_string(t, where, "cwd", cwd);
      std::string path = !cwd.empty() && cwd[0] == '/' ? cwd : base_dir_ + "/" + cwd;
      path = std::filesystem::path(path).lexically_normal().string();
      if (!is_directory(path)) error(t.get("cwd")->source(), "[app] cwd: \"" + cwd + "\" (" + path + ") is not a directory");
      else app.cwd = path;
    }
    if (const toml::node* node = t.get("env")) {
      const toml::table* env = node->as_table();
      if (!env) error(node->source(), "[app] env: expected a table such as { NODE_ENV = \"production\" }");
      for (auto&& [key, value] : env ? *env : kNoKeys) {
        std::string name(key.str());
        auto* text = value.as_string();
        bool reserved = name.starts_with("LISTEN_") || name.starts_with("SHOAL_") || name == "NOTIFY_SOCKET" ||
                        name.starts_with("WATCHDOG_");
        if (name.empty() || name.find('=') != std::string::npos) error(key.source(), "[app] env: \"" + name + "\" is not a variable name");
        else if (reserved) error(key.source(), "[app] env: " + name + " is set by shoal itself (the protocol between shoal and the app)");
        else if (!text) error(value.source(), "[app] env " + name + ": expected a string, got " + std::string(type_name(value)));
        else app.env.emplace_back(name, text->get());
      }
    }
    if (const toml::node* node = t.get("ready")) {
      auto* text = node->as_string();
      std::string mode = text ? text->get() : "";
      if (mode == "notify") app.ready = AppConfig::Ready::Notify;
      else if (mode == "fd") app.ready = AppConfig::Ready::Fd;
      else if (mode == "delay") app.ready = AppConfig::Ready::Delay;
      else error(node->source(), "[app] ready: expected \"notify\" (READY=1 on NOTIFY_SOCKET), \"fd\" (a line on "
                                 "SHOAL_READY_FD) or \"delay\" (a guess after ready_delay)");
    }
    read_duration(t, where, "ready_delay", Millis(1), Millis(3'600'000), app.ready_delay);
    if (app.ready == AppConfig::Ready::Delay && !t.get("ready_delay"))
      error(t.get("ready")->source(), "[app] ready = \"delay\" needs ready_delay, such as \"2s\"");
    if (app.ready != AppConfig::Ready::Delay && t.get("ready_delay"))
      error(t.get("ready_delay")->source(), "[app] ready_delay applies only to ready = \"delay\"");
    if (const toml::node* node = t.get("drain_signal")) {
      static const std::pair<const char*, int> kSignals[] = {{"SIGTERM", SIGTERM}, {"SIGQUIT", SIGQUIT}, {"SIGINT", SIGINT},
                                                             {"SIGHUP", SIGHUP},   {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2},
                                                             {"SIGWINCH", SIGWINCH}};
      auto* text = node->as_string();
      std::string name = text ? text->get() : "";
      if (!name.empty() && !name.starts_with("SIG")) name = "SIG" + name;
      auto found = std::find_if(std::begin(kSignals), std::end(kSignals), [&](const auto& s) { return name == s.first; });
      if (found == std::end(kSignals)) {
        error(node->source(), "[app] drain_signal: expected one of SIGTERM, SIGQUIT, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH");
      } else {
        app.drain_signal = found->second;
        app.drain_signal_name = found->first;
      }
    }
    read_duration(t, where, "watchdog", Millis(0), Millis(3'600'000), app.watchdog);
    // What shoal's own HTTP workers do, the app does: a key for them would be silently ignored.
    auto refuse = [&](const toml::node* node, const std::string& what) {
      if (node) error(node->source(), what + " does not apply with [app]: the app serves the requests itself");
    };
    refuse(root_->get("http"), "[http]");
    refuse(root_->get("health"), "[health]");
    refuse(root_->get("route"), "[[route]]");
    refuse(root_->get("metrics"), "[metrics]");
    if (const toml::table* shutdown = root_->get("shutdown") ? root_->get("shutdown")->as_table() : nullptr)
      refuse(shutdown->get("hook"), "[[shutdown.hook]] (run cleanups in the app, on its drain signal)");
    if (const toml::table* server = root_->get("server") ? root_->get("server")->as_table() : nullptr) {
      refuse(server->get("max_requests"), "[server] max_requests (shoal cannot count an app's requests; max_worker_rss works)");
      refuse(server->get("max_requests_jitter"), "[server] max_requests_jitter");
      refuse(server->get("heartbeat_timeout"), "[server] heartbeat_timeout (use [app] watchdog with WATCHDOG=1)");
    }
    for (const ListenAddress& a : config.server.listen)
      if (a.proxy_protocol != ProxyProtocol::Off)
        error(t.source(), "[server] listen \"" + a.text + "\": proxy_protocol does not apply with [app] (the app reads the socket itself)");
    config.app = std::move(app);
  }

  // Checks between keys of different tables or entries, once everything is read: a value that is
  // fine alone can still make the whole unusable.
  void check_across(const toml::table& root, const Config& config) {
    // A guess that comes after the deadline would have every new generation stopped unready.
    if (config.app && config.app->ready == AppConfig::Ready::Delay && config.app->ready_delay >= config.reload.ready_timeout)
      error(root["app"]["ready_delay"].node()->source(),
            "[app] ready_delay (" + format_duration(config.app->ready_delay) + ") must be shorter than [reload] "
            "ready_timeout (" + format_duration(config.reload.ready_timeout) + "), or no worker is ever ready in time");
    const Config::Shutdown& s = config.shutdown;
    const toml::table* shutdown = root["shutdown"].as_table();
    Millis hooks{0};
    for (const HookConfig& hook : s.hooks) hooks += hook.timeout;
    // drain_delay and then the hooks run inside the shutdown deadline: if they cannot fit in it,
    // every shutdown kills the workers half-way (in the drain delay, or in a hook).
    if (s.drain_delay + hooks >= s.timeout) {
      const toml::node* at = shutdown && shutdown->get("timeout") ? shutdown->get("timeout") : nullptr;
      if (!at && shutdown) at = shutdown->get("drain_delay") ? shutdown->get("drain_delay") : shutdown->get("hook");
      std::string what = s.hooks.empty() ? "drain_delay (" + format_duration(s.drain_delay) + ")"
                                         : "drain_delay (" + format_duration(s.drain_delay) +
                                               ") plus the hooks' timeouts (" + format_duration(hooks) + ")";
      std::string message = "[shutdown] timeout (" + format_duration(s.timeout) + ") must exceed " + what +
                            (s.hooks.empty() ? ", or every shutdown kills the workers during the drain delay"
                                             : ", or the deadline kills the hooks");
      if (at) error(at->source(), message);
      else errors.push_back({file_, 0, 0, message});
    }
  }

  void load_http(const toml::table& t, Config::Http& h) {
    const std::string where = "[http]";
    check_keys(t, where, {"max_header_bytes", "max_url_bytes", "max_header_fields", "max_chunk_ext_bytes",
                          "max_body_bytes", "header_timeout", "keepalive_timeout", "body_timeout", "send_timeout",
                          "max_connections", "trusted_proxies"});
    if (const toml::node* node = t.get("trusted_proxies")) {
      const toml::array* list = node->as_array();
      if (!list) error(node->source(), "[http] trusted_proxies: expected an array such as [\"10.0.0.0/8\"]");
      for (const toml::node& item : list ? *list : kNoItems) {
        auto* text = item.as_string();
        auto cidr = text ? Cidr::parse(text->get()) : std::nullopt;
        if (!cidr) {
          error(item.source(), "[http] trusted_proxies: expected an address or network such as \"10.0.0.0/8\" or "
                               "\"::1\", got " + (text ? "\"" + text->get() + "\"" : std::string(type_name(item))));
          continue;
        }
        h.trusted_proxies.push_back(*cidr);
      }
    }
    read_int(t, where, "max_header_bytes", 1024, 1 << 20, h.max_header_bytes);
    read_int(t, where, "max_url_bytes", 64, 1 << 20, h.max_url_bytes);
    read_int(t, where, "max_header_fields", 1, 10'000, h.max_header_fields);
    read_int(t, where, "max_chunk_ext_bytes", 0, 1 << 20, h.max_chunk_ext_bytes);
    read_int(t, where, "max_body_bytes", 0, int64_t{1} << 32, h.max_body_bytes);
    read_duration(t, where, "header_timeout", Millis(1), Millis(3'600'000), h.header_timeout);
    read_duration(t, where, "keepalive_timeout", Millis(0), Millis(3'600'000), h.keepalive_timeout);
    read_duration(t, where, "body_timeout", Millis(1), Millis(3'600'000), h.body_timeout);
    read_duration(t, where, "send_timeout", Millis(1), Millis(3'600'000), h.send_timeout);
    read_int(t, where, "max_connections", 1, 1'000'000, h.max_connections);
    if (h.max_url_bytes > h.max_header_bytes)
      error(t.get("max_url_bytes") ? t.get("max_url_bytes")->source() : t.source(),
            "[http] max_url_bytes (" + std::to_string(h.max_url_bytes) + ") must not exceed max_header_bytes (" +
                std::to_string(h.max_header_bytes) + "): the URL is part of the header section");
  }

  void check_path_key(const toml::table& t, const std::string& where, std::string_view key, const std::string& value,
                      bool may_be_empty) {
    if ((value.empty() && may_be_empty) || value.starts_with("/")) return;
    error(t.get(key)->source(), where + " " + std::string(key) + ": \"" + value + "\" must start with '/'" +
                                    (may_be_empty ? " (or be \"\" to turn it off)" : ""));
  }

  void load_health(const toml::table& t, Config::Health& h) {
    const std::string where = "[health]";
    check_keys(t, where, {"liveness_path", "readiness_path"});
    read_string(t, where, "liveness_path", h.liveness_path);
    read_string(t, where, "readiness_path", h.readiness_path);
    if (t.get("liveness_path")) check_path_key(t, where, "liveness_path", h.liveness_path, true);
    if (t.get("readiness_path")) check_path_key(t, where, "readiness_path", h.readiness_path, true);
  }

  // A listen address as a string: parsed, or nothing with an error at the node.
  std::optional<ListenAddress> read_address(const toml::node& node, const std::string& where, const char* expected) {
    auto* text = node.as_string();
    if (!text) {
      error(node.source(), where + ": expected " + expected + ", got " + std::string(type_name(node)));
      return std::nullopt;
    }
    std::string why;
    auto address = parse_listen(text->get(), base_dir_, why);
    if (!address) error(node.source(), where + ": \"" + text->get() + "\": " + why);
    return address;
  }

  void load_metrics(const toml::table& t, Config& config) {
    const std::string where = "[metrics]";
    check_keys(t, where, {"listen", "path"});
    read_string(t, where, "path", config.metrics.path);
    if (t.get("path")) check_path_key(t, where, "path", config.metrics.path, false);
    const toml::node* node = t.get("listen");
    if (!node) {
      error(t.source(), "[metrics] listen is missing: the metrics need an address of their own, such as \"127.0.0.1:9180\"");
      return;
    }
    auto address = read_address(*node, "[metrics] listen", "an address such as \"127.0.0.1:9180\"");
    if (!address) return;
    const std::string& text = address->text;
    for (const ListenAddress& a : config.server.listen)
      if (a.addr_len == address->addr_len && memcmp(&a.addr, &address->addr, a.addr_len) == 0) {
        error(node->source(), "[metrics] listen: \"" + text + "\" is also in [server] listen: the metrics need a "
                              "listener of their own, which the public one must not be");
        return;
      }
    address->metrics = true;
    address->name = "metrics";
    config.server.listen.push_back(std::move(*address));
  }

  void load_log(const toml::table& t, Config::Log& l) {
    const std::string where = "[log]";
    check_keys(t, where, {"level", "file", "access_log", "access_log_format"});
    read_string(t, where, "level", l.level);
    spdlog::level::level_enum level;
    if (t.get("level") && !log::parse_level(l.level, level))
      error(t.get("level")->source(), "[log] level: \"" + l.level +
                                          "\" is not one of trace, debug, info, warn, error, critical, off");
    read_path(t, where, "file", l.file);
    read_path(t, where, "access_log", l.access_log);
    std::string format = "combined";
    read_string(t, where, "access_log_format", format);
    if (format == "json") l.access_log_format = Config::Log::AccessFormat::Json;
    else if (format != "combined")
      error(t.get("access_log_format")->source(),
            "[log] access_log_format: \"" + format + "\" is not one of combined, json");
  }

  void load_routes(const toml::table& root, Config& config) {
    const toml::node* node = root.get("route");
    if (!node) return;
    const toml::array* list = node->as_array();
    if (!list || !list->is_array_of_tables()) {
      error(node->source(), "'route' must be written as [[route]] tables, one per route");
      return;
    }
    struct Seen { std::string path; int line; };
    std::vector<Seen> seen;
    if (!config.health.liveness_path.empty()) seen.push_back({config.health.liveness_path, 0});
    if (!config.health.readiness_path.empty()) seen.push_back({config.health.readiness_path, 0});
    int number = 0;
    for (const toml::node& item : *list) {
      const toml::table& t = *item.as_table();
      ++number;
      RouteConfig route;
      route.line = static_cast<int>(t.source().begin.line);
      std::string where = "[[route]] #" + std::to_string(number);
      check_keys(t, where, {"path", "status", "body", "content_type", "delay", "root", "handler"});
      read_string(t, where, "path", route.path);
      if (!t.get("path")) {
        error(t.source(), where + ": path is missing");
        continue;
      }
      if (!route.path.starts_with("/")) {
        error(t.get("path")->source(), where + " path: \"" + route.path + "\" must start with '/'");
        continue;
      }
      where = "[[route]] \"" + route.path + "\"";
      bool fixed_keys = t.get("status") || t.get("body") || t.get("delay") || t.get("content_type");
      if (t.get("root")) {
        route.kind = RouteConfig::Kind::Static;
        if (fixed_keys || t.get("handler"))
          error(t.get("root")->source(), where + ": a static route (root) takes no status, body, content_type, "
                                                  "delay or handler");
        if (!route.path.ends_with("/"))
          error(t.get("path")->source(), where + " path: a static route's path is a prefix and must end with '/'");
        std::string root_text;
        read_string(t, where, "root", root_text);
        std::string path = !root_text.empty() && root_text[0] == '/' ? root_text : base_dir_ + "/" + root_text;
        std::error_code ec;
        auto canonical = std::filesystem::canonical(path, ec);
        if (ec || !is_directory(canonical.string()))
          error(t.get("root")->source(), where + " root: \"" + root_text + "\" (" + path + ") is not a directory");
        else
          route.root = canonical.string();
      } else if (t.get("handler")) {
        std::string handler;
        read_string(t, where, "handler", handler);
        if (handler == "echo") route.kind = RouteConfig::Kind::Echo;
        else if (handler == "info") route.kind = RouteConfig::Kind::Info;
        else error(t.get("handler")->source(), where + " handler: \"" + handler + "\" is not a built-in handler "
                                                                                  "(known: \"echo\", \"info\")");
        if (fixed_keys)
          error(t.get("handler")->source(), where + ": a handler route takes no status, body, content_type or delay");
      } else {
        route.kind = RouteConfig::Kind::Fixed;
        read_int(t, where, "status", 200, 599, route.status);
        read_string(t, where, "body", route.body);
        read_string(t, where, "content_type", route.content_type);
        read_duration(t, where, "delay", Millis(0), Millis(3'600'000), route.delay);
        if (route.content_type.find_first_of("\r\n") != std::string::npos)
          error(t.get("content_type")->source(), where + " content_type: must be one line");
        if ((route.status == 204 || route.status == 304) && !route.body.empty())
          error(t.get("body")->source(), where + ": a " + std::to_string(route.status) +
                                             " response has no body (RFC 9110 15.3.5, 15.4.5)");
      }
      auto previous = std::find_if(seen.begin(), seen.end(), [&](const Seen& s) { return s.path == route.path; });
      if (previous != seen.end()) {
        error(t.get("path")->source(), where + ": duplicate route path (" +
                                           (previous->line ? "first declared at line " + std::to_string(previous->line)
                                                           : std::string("it is a [health] path")) + ")");
        continue;
      }
      seen.push_back({route.path, route.line});
      config.routes.push_back(std::move(route));
    }
  }

  std::string file_;
  std::string base_dir_;
  const toml::table* root_ = nullptr;
};

}  // namespace

ConfigResult parse_config(std::string_view text, const std::string& file) {
  ConfigResult result;
  std::string base_dir = std::filesystem::absolute(file).parent_path().lexically_normal().string();
  if (base_dir.size() > 1 && base_dir.ends_with('/')) base_dir.pop_back();
  toml::table root;
  try {
    root = toml::parse(text, file);
  } catch (const toml::parse_error& e) {
    result.errors.push_back({file, static_cast<int>(e.source().begin.line),
                             static_cast<int>(e.source().begin.column),
                             "syntax error: " + std::string(e.description())});
    return result;
  }
  Loader loader(file, base_dir);
  Config config = loader.load(root);
  config.file = file;
  if (loader.errors.empty()) result.config = std::move(config);
  result.errors = std::move(loader.errors);
  // In file order, as an operator reads the file (errors about the whole file come first).
  std::stable_sort(result.errors.begin(), result.errors.end(), [](const ConfigError& a, const ConfigError& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
  return result;
}

ConfigResult load_config_file(const std::string& path) {
  if (is_directory(path)) {
    ConfigResult result;
    result.errors.push_back({path, 0, 0, "is a directory, not a config file (give the .toml file itself)"});
    return result;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ConfigResult result;
    result.errors.push_back({path, 0, 0, "cannot open: " + errno_text(errno)});
    return result;
  }
  std::stringstream text;
  text << in.rdbuf();
  return parse_config(text.str(), path);
}

}  // namespace shoal
