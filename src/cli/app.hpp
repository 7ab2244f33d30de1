#pragma once
// Parses the command line, runs the subcommand, and turns every error into a
// message on stderr and an exit code, in this one place.

namespace projectiond::cli {

int run_command_line(int argc, char** argv) noexcept;

} // namespace projectiond::cli
