#include "master/run.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "common/config.hpp"
#include "common/duration.hpp"
#include "common/log.hpp"
#include "common/channel.hpp"
#include "master/cli.hpp"
#include "common/proctitle.hpp"
#include "master/master.hpp"

namespace shoal {
namespace {

constexpr const char* kUsage =
    "usage: shoal [-c FILE] [-t]\n"
    "       shoal reload | stop [--now] | upgrade | status [--json] | reopen [--timeout DURATION] [-c FILE]\n"
    "\n"
    "A pre-fork HTTP/1.1 server: one master binds the listening sockets and supervises\n"
    "CPU-pinned worker processes that serve HTTP.\n"
    "\n"
    "options:\n"
    "  -c, --config FILE  the config file (default: ./server.toml)\n"
    "  -t, --test         check the config, print 'FILE: ok' or every error, exit 0 or 1\n"
    "  -T                 the same, then print the config as shoal uses it, every default filled in\n"
    "  -v, --version      print the version and exit\n"
    "  -h, --help         print this help and exit\n"
    "\n"
    "commands (to the running master, through its control socket; each waits for the outcome):\n"
    "  reload    re-read the config and start a new generation of workers\n"
    "  stop      graceful shutdown; --now: stop now, without draining, as SIGQUIT (exit code 1)\n"
    "  upgrade   replace the master with the program file now on disk, on the same sockets\n"
    "  status    the master, its generations and workers (--json for scripts)\n"
    "  reopen    reopen the log files (as SIGUSR1), waiting until every worker took them\n"
    "  --timeout  how long to wait for the answer (default: the master's own deadlines for the\n"
    "             command, from the config, plus 5 s; status: 5 s)\n"
    "  exit codes: 0 done; 1 the config is invalid (nothing changed), the stop was not clean, or\n"
    "  a reopen failed; 2 the new generation or\n"
    "  master failed to start (the old one serves); 3 not ready before the deadline (the old one\n"
    "  serves); 4 another reload or upgrade is in progress; 5 no running master found; 6 the server\n"
    "  is shutting down (the command is refused, or what it waited for was abandoned); 7 no answer\n"
    "  within the timeout (the master may still be working: see its log); 8 permission denied on the\n"
    "  control socket (a master may be running); 64 bad usage\n"
    "\n"
    "signals to the master:\n"
    "  SIGTERM  graceful shutdown (drain_delay, then drain, then exit)\n"
    "  SIGINT   graceful shutdown without drain_delay (Ctrl+C)\n"
    "  SIGQUIT  stop now, without draining (exit code 1)\n"
    "  SIGHUP   reload the config          SIGUSR2  upgrade the binary\n"
    "  SIGUSR1  reopen the log files       SIGTTIN / SIGTTOU  one worker more / fewer\n"
    "\n"
    "exit codes: 0 clean stop, 1 failure (config, bind, or an unclean shutdown), 64 bad usage\n";

// Bad usage: one line and where the help is, and its own exit code (sysexits' EX_USAGE), apart
// from every outcome of a command.
int usage_error(const std::string& what) {
  fprintf(stderr, "shoal: %s (shoal -h for help)\n", what.c_str());
  return kBadUsage;
}

}  // namespace

int run(int argc, char** argv, const Application& app) {
  std::string config_path = "server.toml";
  bool test_only = false, print_config = false;
  std::string command;
  bool json = false;
  std::optional<Millis> wait;
  std::optional<uint32_t> can_adopt;  // -t --can-adopt N: an upgrade in place asks whether this program speaks protocol N
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (i == 1 && is_cli_command(arg)) {
      command = arg;
    } else if (arg == "--json" && !command.empty()) {
      json = true;
    } else if (arg == "--now" && command == "stop") {
      command = "stop --now";
    } else if ((arg == "--timeout" || arg.starts_with("--timeout=")) && !command.empty()) {
      std::string text = arg == "--timeout" ? (i + 1 < argc ? argv[++i] : "") : arg.substr(10);
      wait = parse_duration(text);
      if (!wait) {
        return usage_error("--timeout needs a duration such as 30s or 2m, not '" + text + "'");
      }
    } else if (arg == "-c" || arg == "--config") {
      if (i + 1 >= argc) {
        return usage_error(arg + " needs a file name");
      }
      config_path = argv[++i];
    } else if (arg.starts_with("--config=")) {
      config_path = arg.substr(9);
    } else if (arg == "--can-adopt") {
      char* end = nullptr;
      unsigned long n = i + 1 < argc ? strtoul(argv[i + 1], &end, 10) : 0;
      if (i + 1 >= argc || end == argv[i + 1] || *end != '\0') return usage_error("--can-adopt needs a protocol number");
      can_adopt = static_cast<uint32_t>(n);
      ++i;
    } else if (arg == "-t" || arg == "--test") {
      test_only = true;
    } else if (arg == "-T") {
      test_only = print_config = true;
    } else if (arg == "-v" || arg == "--version") {
      printf("shoal %s\n", SHOAL_VERSION);
      return 0;
    } else if (arg == "-h" || arg == "--help") {
      fputs(kUsage, stdout);
      return 0;
    } else {
      return usage_error("unknown argument '" + arg + "'");
    }
  }

  if (!command.empty()) return run_cli(command, json, config_path, wait);
  if (can_adopt && !test_only) return usage_error("--can-adopt goes with -t");

  ConfigResult loaded = load_config_file(config_path);
  std::vector<std::string> problems;
  for (const ConfigError& error : loaded.errors) problems.push_back(error.to_string());
  // -t checks what a start checks, short of binding the ports; the start checks it first.
  if (loaded.config) problems = start_problems(*loaded.config);

  // Re-executed by an upgrade in place: this process already supervises workers, and must go on
  // doing so even if the config cannot be used now (edited since the check): the generation it
  // adopts serves on with its own config, and the upgrade is reported as failed.
  std::string handover_error;
  std::optional<std::string> handover_text = take_handover_text(handover_error);
  std::optional<Handover> handover;
  std::vector<std::string> handover_warnings;
  if (handover_text) {
    auto current = loaded.config && problems.empty() ? std::make_shared<const Config>(*loaded.config) : nullptr;
    handover = decode_handover(*handover_text, config_path, current, &handover_warnings, handover_error);
  }
  if (!handover_error.empty()) {
    fprintf(stderr, "shoal: upgrade in place: %s; the adopted workers drain and exit by themselves\n", handover_error.c_str());
    return 1;
  }
  if (handover && !problems.empty()) {
    const core::AdoptedGeneration* serving = nullptr;
    for (const auto& g : handover->takeover.generations)
      if (g.serving && g.config) serving = &g;
    if (serving) {
      std::string all;
      for (const auto& problem : problems) all += (all.empty() ? "" : "; ") + problem;
      handover->takeover.config_error = "the new program cannot use the config: " + all;
      loaded.config = *serving->config;
      problems.clear();
      // A draining generation whose own config did not read back had no fallback: it drains
      // with the serving one's.
      for (auto& g : handover->takeover.generations)
        if (!g.config) g.config = serving->config;
    }
  }
  if (!problems.empty()) {
    for (const auto& problem : problems) fprintf(stderr, "%s\n", problem.c_str());
    // Started by an upgrade: the old master keeps serving and reports this as an invalid config.
    if (const char* fd = getenv("SHOAL_UPGRADE_FD")) send_message(atoi(fd), {MsgType::ConfigRejected}, problems.front());
    fprintf(stderr, "%s: %zu error(s); %s\n", config_path.c_str(), problems.size(),
            test_only ? "test failed" : "not started");
    return 1;
  }
  Config& config = *loaded.config;
  if (test_only) {
    if (can_adopt && !speaks_channel_protocol(*can_adopt)) {
      fprintf(stderr, "shoal %s cannot adopt workers that speak channel protocol %u (it speaks %u)\n", SHOAL_VERSION,
              *can_adopt, kChannelProtocol);
      return 2;
    }
    if (print_config) fputs(effective_config(config).c_str(), stdout);
    printf("%s: ok\n", config_path.c_str());
    return 0;
  }
  if (geteuid() != 0 && !config.server.user.empty() && config.server.uid != geteuid())
    fprintf(stderr, "shoal: warning: [server] user = \"%s\" is ignored: switching user needs root, and shoal runs "
            "as uid %u; the workers run as uid %u\n", config.server.user.c_str(), geteuid(), geteuid());

  spdlog::level::level_enum level = spdlog::level::info;
  log::parse_level(config.log.level, level);
  int log_fd = STDERR_FILENO;
  std::string err;
  if (!config.log.file.empty() && (log_fd = log::open_append(config.log.file, err)) < 0) {
    fprintf(stderr, "shoal: [log] file: %s\n", err.c_str());
    return 1;
  }
  log::setup({"master", -1, 1}, level, log_fd);
  if (log_fd != STDERR_FILENO) log::echo_errors_to_stderr(true);  // until the first generation is ready
  log::capture_libevent();
  proctitle::init(argc, argv);  // only a master needs a title; nothing holds a pointer into argv or environ
  for (const auto& warning : handover_warnings) spdlog::warn("upgrade in place: {}", warning);
  Master master(config_path, std::move(config), app, log_fd, std::vector<std::string>(argv, argv + argc),
                std::move(handover));
  return master.run();
}

}  // namespace shoal
