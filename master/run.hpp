// The entry point of shoal as a program and as a library:
//
//   int main(int argc, char** argv) {
//     shoal::Application app;
//     app.handle("/api/time", [](const shoal::Request&, shoal::Responder r) { r.send(200, "text/plain", "..."); });
//     return shoal::run(argc, argv, app);
//   }
//
// The command line and the config are the same as the shoal executable's.
#pragma once

#include "worker/app.hpp"

namespace shoal {

int run(int argc, char** argv, const Application& app);

}  // namespace shoal
