#include "master/takeover.hpp"

#include <stdlib.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "common/config.hpp"

namespace shoal {

using nlohmann::json;

namespace {

json ms(core::Time t) { return t.count(); }
json ms(const std::optional<core::Time>& t) { return t ? json(t->count()) : json(nullptr); }
core::Time time_of(const json& j) { return core::Time(j.get<int64_t>()); }
std::optional<core::Time> maybe_time(const json& j) {
  return j.is_null() ? std::nullopt : std::optional<core::Time>(time_of(j));
}
json key_json(const core::WorkerKey& k) { return json::array({k.generation, k.slot, k.incarnation}); }
core::WorkerKey key_of(const json& j) {
  return {j.at(0).get<uint64_t>(), j.at(1).get<int>(), j.at(2).get<uint32_t>()};
}

const char* state_name(core::AdoptedWorker::State s) {
  switch (s) {
    case core::AdoptedWorker::State::Starting: return "starting";
    case core::AdoptedWorker::State::Ready: return "ready";
    case core::AdoptedWorker::State::Draining: return "draining";
  }
  return "?";
}
core::AdoptedWorker::State state_of(const std::string& name) {
  if (name == "starting") return core::AdoptedWorker::State::Starting;
  if (name == "ready") return core::AdoptedWorker::State::Ready;
  if (name == "draining") return core::AdoptedWorker::State::Draining;
  throw std::runtime_error("unknown worker state '" + name + "'");
}

}  // namespace

std::vector<int> Handover::all_fds() const {
  std::vector<int> fds = listeners;
  if (control >= 0) fds.push_back(control);
  if (metrics >= 0) fds.push_back(metrics);
  for (const auto& w : workers)
    for (int fd : {w.channel, w.control, w.out, w.err})
      if (fd >= 0) fds.push_back(fd);
  for (const auto& [id, fd] : replies) fds.push_back(fd);
  return fds;
}

std::string encode_handover(const Handover& h) {
  const core::Takeover& t = h.takeover;
  json generations = json::array();
  for (const auto& g : t.generations) {
    json slots = json::array();
    for (const auto& s : g.slots) slots.push_back({{"slot", s.slot}, {"incarnations", s.incarnations},
                                                   {"failures", s.failures}, {"respawn_in_ms", ms(s.respawn_in)}});
    generations.push_back({{"number", g.number}, {"serving", g.serving}, {"failed", g.failed}, {"hurried", g.hurried}, {"desired", g.desired},
                           {"age_ms", ms(g.age)}, {"draining_ms", ms(g.draining_for)},
                           {"config", effective_config(*g.config)}, {"slots", slots}});
  }
  json workers = json::array();
  for (const auto& w : t.workers) {
    json one = {{"key", key_json(w.key)}, {"pid", w.pid}, {"cpu", w.cpu}, {"state", state_name(w.state)},
                {"told", static_cast<int>(w.told)}, {"culled", w.culled}, {"killed", w.killed},
                {"replaces", w.replaces ? key_json(*w.replaces) : json(nullptr)}, {"replace_reason", w.replace_reason},
                {"age_ms", ms(w.age)}, {"ready_ms", ms(w.ready_for)}, {"kill_in_ms", ms(w.kill_in)},
                {"kill_deadline", w.kill_deadline}};
    for (const auto& fds : h.workers)
      if (fds.key == w.key)
        one["fds"] = {{"app", fds.app}, {"channel", fds.channel}, {"control", fds.control}, {"out", fds.out},
                      {"err", fds.err}};
    workers.push_back(std::move(one));
  }
  json connections = json::array();
  for (const auto& [id, fd] : h.replies) connections.push_back(json::array({id, fd}));
  json waiters = json::array();
  for (const auto& w : t.drain_waiters)
    waiters.push_back({{"generation", w.generation}, {"message", w.message}, {"replies", w.replies}});
  json doc = {{"protocol", h.protocol},         {"pid", t.pid},
              {"from_version", t.from_version}, {"last_generation", t.last_generation},
              {"uptime_ms", ms(t.uptime)},      {"busy_ms", ms(t.busy_for)},
              {"listeners", h.listeners},       {"control", h.control}, {"metrics", h.metrics},
              {"connections", connections},     {"upgrade_replies", t.replies},
              {"drain_waiters", waiters},       {"generations", generations},
              {"workers", workers}};
  return doc.dump();
}

std::optional<Handover> decode_handover(const std::string& text, const std::string& config_path,
                                        std::shared_ptr<const Config> fallback, std::vector<std::string>* warnings,
                                        std::string& err) {
  try {
    json doc = json::parse(text);
    Handover h;
    core::Takeover& t = h.takeover;
    h.protocol = doc.at("protocol").get<uint32_t>();
    t.pid = doc.at("pid").get<int>();
    t.from_version = doc.at("from_version").get<std::string>();
    t.last_generation = doc.at("last_generation").get<uint64_t>();
    t.uptime = time_of(doc.at("uptime_ms"));
    t.busy_for = time_of(doc.at("busy_ms"));
    h.listeners = doc.at("listeners").get<std::vector<int>>();
    h.control = doc.at("control").get<int>();
    h.metrics = doc.value("metrics", -1);  // absent from an older program's hand-over
    for (const auto& r : doc.at("connections")) h.replies.emplace_back(r.at(0).get<uint64_t>(), r.at(1).get<int>());
    t.replies = doc.at("upgrade_replies").get<std::vector<uint64_t>>();
    for (const auto& w : doc.at("drain_waiters"))
      t.drain_waiters.push_back({w.at("generation").get<uint64_t>(), w.at("message").get<std::string>(),
                                 w.at("replies").get<std::vector<uint64_t>>()});
    for (const auto& g : doc.at("generations")) {
      core::AdoptedGeneration a;
      a.number = g.at("number").get<uint64_t>();
      a.serving = g.at("serving").get<bool>();
      a.failed = g.at("failed").get<bool>();
      a.hurried = g.value("hurried", false);
      a.desired = g.at("desired").get<int>();
      a.age = time_of(g.at("age_ms"));
      a.draining_for = maybe_time(g.at("draining_ms"));
      ConfigResult parsed = parse_config(g.at("config").get<std::string>(), config_path);
      if (parsed.config) {
        a.config = std::make_shared<const Config>(std::move(*parsed.config));
      } else {
        a.config = fallback;
        if (warnings)
          warnings->push_back("generation " + std::to_string(a.number) + "'s config does not read back (" +
                              parsed.errors.front().to_string() + "): it is supervised with the current one");
      }
      for (const auto& s : g.at("slots"))
        a.slots.push_back({s.at("slot").get<int>(), s.at("incarnations").get<uint32_t>(), s.at("failures").get<int>(),
                           maybe_time(s.at("respawn_in_ms"))});
      t.generations.push_back(std::move(a));
    }
    for (const auto& w : doc.at("workers")) {
      core::AdoptedWorker a;
      a.key = key_of(w.at("key"));
      a.pid = w.at("pid").get<int>();
      a.cpu = w.at("cpu").get<int>();
      a.state = state_of(w.at("state").get<std::string>());
      a.told = static_cast<MsgType>(w.at("told").get<int>());
      a.culled = w.at("culled").get<bool>();
      a.killed = w.at("killed").get<bool>();
      if (!w.at("replaces").is_null()) a.replaces = key_of(w.at("replaces"));
      a.replace_reason = w.at("replace_reason").get<std::string>();
      a.age = time_of(w.at("age_ms"));
      a.ready_for = time_of(w.at("ready_ms"));
      a.kill_in = maybe_time(w.at("kill_in_ms"));
      a.kill_deadline = w.at("kill_deadline").get<std::string>();
      if (w.contains("fds")) {
        const json& f = w.at("fds");
        h.workers.push_back({a.key, f.at("app").get<bool>(), f.at("channel").get<int>(), f.at("control").get<int>(),
                             f.at("out").get<int>(), f.at("err").get<int>()});
      }
      t.workers.push_back(std::move(a));
    }
    return h;
  } catch (const std::exception& e) {
    err = std::string("the hand-over is unreadable: ") + e.what();
    return std::nullopt;
  }
}

std::optional<std::string> take_handover_text(std::string& err) {
  const char* value = getenv("SHOAL_TAKEOVER_FD");
  if (!value) return std::nullopt;
  int fd = atoi(value);
  unsetenv("SHOAL_TAKEOVER_FD");
  std::string text;
  char buf[65536];
  if (lseek(fd, 0, SEEK_SET) != 0) {
    err = "SHOAL_TAKEOVER_FD=" + std::to_string(fd) + " is not the hand-over's memfd";
    ::close(fd);
    return std::nullopt;
  }
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return text;
}

}  // namespace shoal
