// shoal as a library with faulty application handlers, for the fault tests (tests/fault_test.cpp):
// what a bug in application code looks like from the outside.
#include <sys/mman.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "master/run.hpp"

int main(int argc, char** argv) {
  shoal::Application app;
  // Never returns: an endless loop in a handler. The worker's event loop stops with it.
  app.handle("/spin", [](const shoal::Request&, shoal::Responder) {
    for (volatile unsigned long i = 0;; i = i + 1) {
    }
  });
  // Grows the worker's resident memory by ?mb=N MiB, touched page by page, and keeps it: a leak.
  app.handle("/grow", [](const shoal::Request& req, shoal::Responder reply) {
    size_t mb = 0;
    if (req.query.starts_with("mb=")) mb = std::strtoul(std::string(req.query.substr(3)).c_str(), nullptr, 10);
    size_t bytes = mb << 20;
    void* leak = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (leak == MAP_FAILED) return reply.send(500, "text/plain", "mmap failed\n");
    memset(leak, 1, bytes);
    reply.send(200, "text/plain", "grew " + std::to_string(mb) + " MiB\n");
  });
  return shoal::run(argc, argv, app);
}
