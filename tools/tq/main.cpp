// tools/tq/main.cpp — the `tq` command-line tool: dispatches to the registered sub-commands.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <map>

#include "command.h"
#include "turboquant/error.h"

int main(int argc, char** argv) {
  CLI::App app{"tq — TurboQuant: compressed KV caches and vectors, fused attention on the codes"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("tq 0.1.0"));
  auto& cmds = tq::cli::registry();
  std::sort(cmds.begin(), cmds.end(), [](auto& a, auto& b) { return a.name < b.name; });
  std::map<CLI::App*, tq::cli::Runner> runners;
  for (auto& c : cmds) {
    CLI::App* sub = app.add_subcommand(c.name, c.help);
    runners[sub] = c.setup(*sub);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  for (auto& [sub, run] : runners) {
    if (sub->parsed()) {
      try {
        return run();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "tq %s: %s\n", sub->get_name().c_str(), e.what());
        return 1;
      }
    }
  }
  return 1;
}
