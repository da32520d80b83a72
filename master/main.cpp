// The shoal executable: the library with no handlers of its own; every route comes from the config.
#include "master/run.hpp"

int main(int argc, char** argv) {
  shoal::Application app;
  return shoal::run(argc, argv, app);
}
