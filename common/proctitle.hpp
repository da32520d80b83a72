// Process titles, as nginx sets them, so that ps and top tell the master from its workers:
//   shoal: master -c /etc/shoal/server.toml
//   shoal: worker 1 (generation 3)
//   shoal: worker 0 (generation 2, draining)
// The title is written over the process's own argv area (what /proc/PID/cmdline shows; the
// environment after it is moved elsewhere first, so the area can grow into it), and its first 15
// bytes become the thread name (/proc/PID/comm, top's default column).
#pragma once

#include <string_view>

namespace shoal::proctitle {

// Once, in main, before anything reads argv or the environment through pointers into that area:
// argv itself is left pointing at the original strings, which are copied first (argv[i] stays
// valid: it now points at a copy).
void init(int argc, char** argv);

// Sets the title; longer titles are cut to the area's size. A no-op before init().
void set(std::string_view title);

}  // namespace shoal::proctitle
