#pragma once
// Chooses where log lines go (--log-target) and how verbose they are (--log-level).

#include <string>

namespace projectiond::logging {

enum class Target { automatic, journal, stderr_lines };

// Throws std::invalid_argument for an unknown name.
Target parse_target(const std::string& name);
void parse_level_or_throw(const std::string& name);

// Installs the default logger. `automatic` picks the journal when systemd
// connected stderr to it (JOURNAL_STREAM names stderr), else stderr.
void setup_logging(Target target, const std::string& level);

// True when stderr is the journal stream systemd gave us.
bool stderr_is_journal();

} // namespace projectiond::logging
