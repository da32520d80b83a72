// shoal as a library: an Application holds the handlers a C++ program registers before calling
// shoal::run(); the shoal executable is this plus the routes its config declares.
#pragma once

#include <string>
#include <vector>

#include "worker/http.hpp"

namespace shoal {

class Application {
 public:
  struct Route {
    std::string path;  // exact, or a prefix when it ends with '/' and prefix is set
    bool prefix = false;
    Handler handler;
  };

  // Answers requests whose path is exactly `path`.
  Application& handle(std::string path, Handler handler) {
    routes_.push_back({std::move(path), false, std::move(handler)});
    return *this;
  }
  // Answers requests whose path starts with `prefix`.
  Application& handle_prefix(std::string prefix, Handler handler) {
    routes_.push_back({std::move(prefix), true, std::move(handler)});
    return *this;
  }

  const std::vector<Route>& routes() const { return routes_; }

 private:
  std::vector<Route> routes_;
};

}  // namespace shoal
