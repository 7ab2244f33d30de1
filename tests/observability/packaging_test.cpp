#include "exposition.hpp"
#include "observability/metrics.hpp"
#include "run_program.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <set>
#include <string>
#include <vector>

using namespace projectiond;

namespace {

const std::string rules_file = "packaging/monitoring/prometheus-rules.yml";
const std::string dashboard_file = "packaging/monitoring/grafana-dashboard.json";

// Every metric name a scrape can show, histogram series included.
std::set<std::string> exposed_names() {
    observability::Metrics metrics("0.0.0");
    auto& partition = metrics.partition("p", 0);
    partition.add_batch(1, std::chrono::milliseconds(1));
    return testing::parse_exposition(metrics.text()).names();
}

// Every word starting with projectiond_ (std::regex would do, but GCC 12
// warns inside it under the sanitizers).
std::set<std::string> metric_names_in(const std::string& text) {
    const auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_'; };
    std::set<std::string> names;
    for (auto at = text.find("projectiond_"); at != std::string::npos; at = text.find("projectiond_", at + 1)) {
        if (at > 0 && word(text[at - 1])) {
            continue;
        }
        auto end = at;
        while (end < text.size() && word(text[end])) {
            ++end;
        }
        names.insert(text.substr(at, end - at));
    }
    return names;
}

// Every "expr" of every panel, rows' panels included.
void collect_exprs(const nlohmann::json& panels, std::vector<std::string>& exprs) {
    for (const auto& panel : panels) {
        for (const auto& target : panel.value("targets", nlohmann::json::array())) {
            exprs.push_back(target.at("expr").get<std::string>());
        }
        collect_exprs(panel.value("panels", nlohmann::json::array()), exprs);
    }
}

std::vector<std::string> dashboard_exprs() {
    const auto dashboard = nlohmann::json::parse(testing::source_file(dashboard_file));
    std::vector<std::string> exprs;
    collect_exprs(dashboard.at("panels"), exprs);
    return exprs;
}

// What Grafana would send Prometheus: its variables replaced by values.
std::string as_sent(std::string expr) {
    for (const auto& [variable, value] : std::vector<std::pair<std::string, std::string>>{
             {"$__rate_interval", "1m"}, {"$job", "projectiond"}, {"$instance", ".*"}, {"$projection", ".*"}}) {
        for (auto at = expr.find(variable); at != std::string::npos; at = expr.find(variable, at + value.size())) {
            expr.replace(at, variable.size(), value);
        }
    }
    return expr;
}

} // namespace

TEST_SUITE("promtool") {
    TEST_CASE("the alerting rules pass `promtool check rules`") {
        const auto result = testing::run_program({"promtool", "check", "rules", testing::source_path(rules_file)});
        INFO(result.output);
        CHECK(result.exit_code == 0);
        CHECK(result.output.find("SUCCESS") != std::string::npos);
    }

    TEST_CASE("each alert fires on the series that should trigger it, and not before (`promtool test rules`)") {
        const auto result = testing::run_program(
            {"promtool", "test", "rules", testing::source_path("tests/observability/prometheus-rules-test.yml")});
        INFO(result.output);
        CHECK(result.exit_code == 0);
    }

    TEST_CASE("every dashboard query is valid PromQL") {
        // promtool has no offline query checker, but it parses the expressions
        // of recording rules: one rule per panel query.
        std::string rules = "groups:\n  - name: dashboard\n    rules:\n";
        for (const auto& expr : dashboard_exprs()) {
            nlohmann::json quoted = as_sent(expr);
            rules += "      - record: dashboard:query\n        expr: " + quoted.dump() + "\n";
        }
        const testing::TempFile file(rules, ".yml");
        const auto result = testing::run_program({"promtool", "check", "rules", file.path()});
        INFO(result.output);
        CHECK(result.exit_code == 0);
    }
}

TEST_SUITE("monitoring files") {
    TEST_CASE("the alerting rules name the four alerts and only metrics that exist") {
        const std::string rules = testing::source_file(rules_file);
        for (const char* alert :
             {"ProjectiondDown", "ProjectiondProjectionFailed", "ProjectiondLagHigh", "ProjectiondWatermarkHeld"}) {
            CAPTURE(alert);
            CHECK(rules.find(std::string("alert: ") + alert + "\n") != std::string::npos);
        }
        const auto exposed = exposed_names();
        for (const auto& name : metric_names_in(rules)) {
            CAPTURE(name);
            CHECK(exposed.contains(name));
        }
    }

    TEST_CASE(
        "the dashboard is valid JSON whose queries name only metrics that exist, and cover what operators watch") {
        const auto exprs = dashboard_exprs();
        REQUIRE_FALSE(exprs.empty());
        const auto exposed = exposed_names();
        std::set<std::string> used;
        for (const auto& expr : exprs) {
            for (const auto& name : metric_names_in(expr)) {
                CAPTURE(expr);
                CHECK(exposed.contains(name));
                used.insert(name);
            }
        }
        for (const char* watched :
             {"projectiond_lag_events", "projectiond_lag_seconds", "projectiond_events_processed_total",
              "projectiond_batch_duration_seconds_bucket", "projectiond_failures_total",
              "projectiond_dead_letters_total", "projectiond_partition_owned", "projectiond_watermark_held_seconds"}) {
            CAPTURE(watched);
            CHECK(used.contains(watched));
        }
        bool quantiles = false;
        for (const auto& expr : exprs) {
            quantiles = quantiles || expr.find("histogram_quantile(0.99, ") != std::string::npos;
        }
        CHECK(quantiles);
    }
}
