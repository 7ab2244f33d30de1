#pragma once
// Runs a program found on PATH with a file (or nothing) as its stdin and
// both its outputs captured, for checks with real tools such as promtool.

#include <string>
#include <vector>

namespace projectiond::testing {

struct ProgramResult {
    int exit_code = -1;
    std::string output; // stdout and stderr, interleaved
};

// Fails the test when the program cannot be started (not installed).
ProgramResult run_program(const std::vector<std::string>& argv, const std::string& input = {});

// A file with `content` in $TMPDIR, removed when this goes.
class TempFile {
public:
    explicit TempFile(const std::string& content, const std::string& suffix = "");
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    ~TempFile();
    const std::string& path() const noexcept { return path_; }

private:
    std::string path_;
};

// A file of the source tree ($PROJECTIOND_SOURCE_ROOT), read whole.
std::string source_file(const std::string& relative_path);
std::string source_path(const std::string& relative_path);

} // namespace projectiond::testing
