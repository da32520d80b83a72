#include "common/proctitle.hpp"

#include <string.h>
#include <sys/prctl.h>

#include <algorithm>
#include <cstdlib>
#include <string>

extern char** environ;

namespace shoal::proctitle {
namespace {

char* area = nullptr;  // argv[0] ... the end of the last contiguous argv or environment string
size_t area_size = 0;

}  // namespace

void init(int argc, char** argv) {
  if (area || argc < 1 || !argv || !argv[0]) return;
  // The area: argv's strings, then the environment's, as long as each follows the previous one.
  char* start = argv[0];
  char* end = start + strlen(start) + 1;
  for (int i = 1; i < argc; ++i)
    if (argv[i] == end) end = argv[i] + strlen(argv[i]) + 1;
  size_t env_count = 0;
  for (char** e = environ; e && *e; ++e, ++env_count)
    if (*e == end) end = *e + strlen(*e) + 1;
  // Copies first, so that nothing points into the area once it is overwritten.
  char** env_copy = static_cast<char**>(calloc(env_count + 1, sizeof(char*)));
  if (!env_copy) return;
  for (size_t i = 0; i < env_count; ++i) env_copy[i] = strdup(environ[i]);
  environ = env_copy;
  for (int i = 0; i < argc; ++i) argv[i] = strdup(argv[i]);
  area = start;
  area_size = static_cast<size_t>(end - start);
}

void set(std::string_view title) {
  if (!area || area_size < 2) return;
  size_t n = std::min(title.size(), area_size - 1);
  memcpy(area, title.data(), n);
  memset(area + n, '\0', area_size - n);
  std::string comm(title.substr(0, 15));
  prctl(PR_SET_NAME, comm.c_str(), 0, 0, 0);
}

}  // namespace shoal::proctitle
