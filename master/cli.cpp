#include "master/cli.hpp"

#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <toml++/toml.h>

#include "common/config.hpp"
#include "common/duration.hpp"
#include "common/sys.hpp"

namespace shoal {
namespace {

// The control socket of the server started with config_path, when the file has errors (the
// operator may be about to reload a broken edit): from the TOML as far as it parses, from the
// line itself, or else at its default place beside the file.
std::string control_socket_of_invalid(const std::string& config_path) {
  std::string dir = std::filesystem::absolute(config_path).parent_path().lexically_normal().string();
  auto resolve = [&](const std::string& path) { return path.empty() || path[0] == '/' ? path : dir + "/" + path; };
  std::ifstream in(config_path);
  std::stringstream text;
  text << in.rdbuf();
  try {
    toml::table table = toml::parse(text.str(), config_path);
    if (auto path = table["server"]["control_socket"].value<std::string>()) return resolve(*path);
  } catch (const toml::parse_error&) {
    std::smatch match;
    std::string all = text.str();
    if (std::regex_search(all, match, std::regex(R"re(control_socket\s*=\s*"([^"]*)")re"))) return resolve(match[1]);
  }
  return default_control_socket(dir);
}

std::string user_name(uid_t uid) {
  passwd* pw = getpwuid(uid);
  return pw ? pw->pw_name : std::to_string(uid);
}

std::string duration_text(long long seconds) {
  if (seconds < 120) return std::to_string(seconds) + " s";
  if (seconds < 7200) return std::to_string(seconds / 60) + " min";
  return std::to_string(seconds / 3600) + " h " + std::to_string(seconds / 60 % 60) + " min";
}

void print_status(const nlohmann::json& status) {
  const auto& master = status["master"];
  printf("master %d, shoal %s, up %s, %s, config %s\n", master["pid"].get<int>(),
         master["version"].get<std::string>().c_str(), duration_text(master["uptime_s"].get<long long>()).c_str(),
         master["state"].get<std::string>().c_str(), master["config"].get<std::string>().c_str());
  for (const auto& generation : status["generations"]) {
    const bool app = generation.value("kind", "http") == "app";
    std::string draining;
    if (generation.contains("draining_for_ms")) {
      // Since when, what it still holds, and when it is killed at the latest.
      draining = " for " + duration_text(generation["draining_for_ms"].get<long long>() / 1000);
      if (generation.contains("connections"))
        draining += ", " + std::to_string(generation["connections"].get<unsigned long long>()) + " connection(s)";
      if (!generation["deadline_in_ms"].is_null())
        draining += ", killed in " + duration_text((generation["deadline_in_ms"].get<long long>() + 999) / 1000) + " at the latest";
      if (generation.value("hurried", false)) draining += " (cut short: max_draining_generations)";
    }
    printf("generation %llu: %s%s, %zu worker(s)%s\n", generation["number"].get<unsigned long long>(),
           generation["state"].get<std::string>().c_str(), draining.c_str(), generation["workers"].size(),
           app ? " running [app] command" : "");
    for (const auto& worker : generation["workers"]) {
      std::string cpu = worker["cpu"].get<int>() < 0 ? "any" : std::to_string(worker["cpu"].get<int>());
      printf("  worker %d  pid %d  cpu %s  %-8s  ", worker["index"].get<int>(), worker["pid"].get<int>(), cpu.c_str(),
             worker["state"].get<std::string>().c_str());
      if (app) {  // its figures are its own: what it last said with STATUS=
        std::string said = worker.value("app_status", "");
        printf("%s\n", said.empty() ? "(no STATUS= yet)" : said.c_str());
      } else {
        printf("%u connection(s), %u in flight, %llu served\n", worker["connections"].get<unsigned>(),
               worker["requests_in_flight"].get<unsigned>(), worker["requests_served"].get<unsigned long long>());
      }
    }
  }
  const auto& reload = status["last_reload"];
  if (reload.is_null()) printf("last reload: none\n");
  else printf("last reload: %s ago: %s\n", duration_text(reload["ago_s"].get<long long>()).c_str(),
              reload["message"].get<std::string>().c_str());
}

}  // namespace

bool is_cli_command(const std::string& word) {
  return word == "reload" || word == "stop" || word == "upgrade" || word == "status" || word == "reopen";
}

Millis cli_wait_bound(const std::string& command, const Config& config) {
  constexpr Millis kSlack{5000};
  constexpr Millis kUpgradeStartup{2000};  // the new master's own start-up (Timing::upgrade_startup)
  constexpr Millis kStopGrace{1000};   // Timing::stop_grace
  constexpr Millis kReopenWait{2000};  // Timing::reopen_wait
  if (command == "stop") return config.shutdown.timeout + kSlack;
  if (command == "stop --now") return kStopGrace + kSlack;
  if (command == "reopen") return kReopenWait + kSlack;
  if (command == "reload") return config.reload.ready_timeout + config.shutdown.timeout + kSlack;
  if (command == "upgrade") return kUpgradeStartup + config.reload.ready_timeout + config.shutdown.timeout + kSlack;
  return kSlack;  // status: answered at once
}

int run_cli(const std::string& command, bool json, const std::string& config_path, std::optional<Millis> wait) {
  ConfigResult loaded = load_config_file(config_path);
  std::string path = loaded.config ? loaded.config->server.control_socket : control_socket_of_invalid(config_path);
  if (path.empty()) {
    fprintf(stderr, "%s: no running master found: %s sets no control_socket\n", command.c_str(), config_path.c_str());
    return kNoMasterFound;
  }
  // The master answers once the outcome is known (a reload waits for the old generation's drain,
  // a stop for the last worker), within its own deadlines; past them, something is wrong.
  Millis bound = wait ? *wait : cli_wait_bound(command, loaded.config ? *loaded.config : Config{});
  auto deadline = std::chrono::steady_clock::now() + bound;
  auto left_ms = [&] {
    auto left = std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now()).count();
    return std::max<long long>(left, 0);
  };
  auto no_answer = [&](int fd) {
    fprintf(stderr, "%s: no answer from the master within %s; it may still be working: see its log, or run "
            "'shoal status'\n", command.c_str(), format_duration(bound).c_str());
    close(fd);
    return kNoAnswerInTime;
  };
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  strncpy(sun.sun_path, path.c_str(), sizeof sun.sun_path - 1);
  // A unix socket's connect waits while the master's backlog is full, bounded by SO_SNDTIMEO.
  timeval tv = to_timeval(Millis(std::max<long long>(left_ms(), 1)));
  if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0) {
    if (fd >= 0 && (errno == EAGAIN || errno == EINPROGRESS)) return no_answer(fd);
    if (fd >= 0 && (errno == EACCES || errno == EPERM)) {
      // A master may well be running: its socket is mode 0600, its user's. Not "not running".
      struct stat st;
      std::string owner = stat(path.c_str(), &st) == 0 ? user_name(st.st_uid) : "?";
      fprintf(stderr, "%s: permission denied on %s (owned by %s, mode 0600): run this as %s or root\n", command.c_str(),
              path.c_str(), owner.c_str(), owner.c_str());
      close(fd);
      return kPermissionDenied;
    }
    fprintf(stderr, "%s: no running master found: nothing accepts on %s (%s)\n", command.c_str(), path.c_str(),
            errno_text(errno).c_str());
    if (fd >= 0) close(fd);
    return kNoMasterFound;
  }
  std::string line = command + "\n";
  if (send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
    if (errno == EAGAIN) return no_answer(fd);
    fprintf(stderr, "%s: the master did not take the command: %s\n", command.c_str(), errno_text(errno).c_str());
    close(fd);
    return kNoMasterFound;
  }
  std::string reply;
  char buf[4096];
  for (;;) {
    pollfd pfd{fd, POLLIN, 0};
    int ready = poll(&pfd, 1, static_cast<int>(std::min<long long>(left_ms(), INT32_MAX)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) return no_answer(fd);
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  nlohmann::json answer = nlohmann::json::parse(reply, nullptr, false);
  if (answer.is_discarded() || !answer.contains("code")) {
    fprintf(stderr, "%s: the master closed the connection without an answer\n", command.c_str());
    return kNoMasterFound;
  }
  int code = answer["code"].get<int>();
  if (command == "status" && answer.contains("status")) {
    if (json) printf("%s\n", answer["status"].dump(2).c_str());
    else print_status(answer["status"]);
  } else {
    printf("%s\n", answer["message"].get<std::string>().c_str());
  }
  return code;
}

}  // namespace shoal
