#pragma once
// Exit codes (sysexits.h) and the error that carries one to main().

#include <stdexcept>
#include <string>

namespace projectiond::cli {

enum ExitCode : int {
    exit_ok = 0,
    exit_usage = 64,       // EX_USAGE: bad command line
    exit_data = 65,        // EX_DATAERR: bad input data
    exit_unavailable = 69, // EX_UNAVAILABLE: the database cannot be reached or is not ready
    exit_software = 70,    // EX_SOFTWARE: internal error
    exit_config = 78,      // EX_CONFIG: configuration error
};

// An error whose exit code the command already knows.
class CommandError : public std::runtime_error {
public:
    CommandError(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
    ExitCode code() const noexcept { return code_; }

private:
    ExitCode code_;
};

} // namespace projectiond::cli
