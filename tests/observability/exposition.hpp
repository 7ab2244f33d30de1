#pragma once
// Reads Prometheus text exposition back into series → value, to check what a
// scrape shows.

#include <map>
#include <set>
#include <string>

namespace projectiond::testing {

struct Exposition {
    std::map<std::string, double> series;     // `name{labels}` exactly as written → value
    std::map<std::string, std::string> types; // family name → counter, gauge, histogram…
    std::set<std::string> names() const;      // every series' metric name

    // The value of the series with this name whose labels include all of `labels` ("a=\"x\",b=\"y\"" parts).
    int count(const std::string& name, const std::set<std::string>& labels = {}) const;
    double value(const std::string& name, const std::set<std::string>& labels) const;
};

Exposition parse_exposition(const std::string& text);

} // namespace projectiond::testing
