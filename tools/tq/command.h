// tools/tq/command.h — each cmd_*.cpp registers one sub-command of `tq` with a static Registrar.
//
//   static tq::cli::Registrar reg("roundtrip", "Encode + decode a .npy", [](CLI::App& app) {
//     auto opts = std::make_shared<Opts>();  ... app.add_option(...);
//     return [opts]() -> int { ...; return 0; };   // runs when the sub-command is chosen
//   });
//
// Errors: throw tq::Error (or any std::exception); main prints one line "tq <cmd>: <message>"
// and exits 1 — never a stack trace or an abort.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace tq::cli {

using Runner = std::function<int()>;
using Setup = std::function<Runner(CLI::App&)>;

struct Command {
  std::string name, help;
  Setup setup;
};

inline std::vector<Command>& registry() {
  static std::vector<Command> r;
  return r;
}

struct Registrar {
  Registrar(std::string name, std::string help, Setup setup) {
    registry().push_back({std::move(name), std::move(help), std::move(setup)});
  }
};

}  // namespace tq::cli
