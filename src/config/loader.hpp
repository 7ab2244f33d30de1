#pragma once
// Reads the YAML configuration into a Config and validates all of it before
// anything starts. Every problem is reported, each as
// "file:line:column: what is wrong (and what to do)".

#include "config/config.hpp"

#include <stdexcept>
#include <string>
#include <string_view>

namespace projectiond::config {

class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Throws ConfigError, naming the file when it cannot be read.
Config load_config_file(const std::string& path);

// `source` names the text in messages (usually its file name).
Config parse_config(std::string_view text, const std::string& source);

} // namespace projectiond::config
