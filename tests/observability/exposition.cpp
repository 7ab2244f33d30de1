#include "exposition.hpp"

#include <sstream>

#include <doctest/doctest.h>

namespace projectiond::testing {

namespace {
std::string name_of(const std::string& series) {
    return series.substr(0, series.find('{'));
}

bool has_labels(const std::string& series, const std::set<std::string>& labels) {
    const auto open = series.find('{');
    if (open == std::string::npos) {
        return labels.empty();
    }
    const std::string inside = "," + series.substr(open + 1, series.size() - open - 2) + ",";
    for (const auto& label : labels) {
        if (inside.find("," + label + ",") == std::string::npos) {
            return false;
        }
    }
    return true;
}
} // namespace

Exposition parse_exposition(const std::string& text) {
    Exposition result;
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.starts_with("# TYPE ")) {
            std::istringstream words(line.substr(7));
            std::string name;
            std::string type;
            words >> name >> type;
            result.types[name] = type;
            continue;
        }
        if (line.empty() || line.starts_with('#')) {
            continue;
        }
        const auto space = line.rfind(' ');
        REQUIRE_MESSAGE(space != std::string::npos, "not a sample line: ", line);
        result.series[line.substr(0, space)] = std::stod(line.substr(space + 1));
    }
    return result;
}

std::set<std::string> Exposition::names() const {
    std::set<std::string> names;
    for (const auto& [key, value] : series) {
        names.insert(name_of(key));
    }
    return names;
}

int Exposition::count(const std::string& name, const std::set<std::string>& labels) const {
    int found = 0;
    for (const auto& [key, value] : series) {
        if (name_of(key) == name && has_labels(key, labels)) {
            ++found;
        }
    }
    return found;
}

double Exposition::value(const std::string& name, const std::set<std::string>& labels) const {
    const double* found = nullptr;
    for (const auto& [key, value] : series) {
        if (name_of(key) == name && has_labels(key, labels)) {
            REQUIRE_MESSAGE(found == nullptr, "more than one series of ", name, " matches");
            found = &value;
        }
    }
    REQUIRE_MESSAGE(found != nullptr, "no series of ", name, " with those labels");
    return *found;
}

} // namespace projectiond::testing
