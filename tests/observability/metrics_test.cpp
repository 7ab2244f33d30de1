#include "exposition.hpp"
#include "observability/metrics.hpp"
#include "run_program.hpp"

#include <doctest/doctest.h>

#include <thread>
#include <vector>

using namespace projectiond;
using namespace std::chrono_literals;
using observability::FailureKind;
using observability::Metrics;
using observability::ProjectionState;
using testing::parse_exposition;

namespace {

// Metrics as a daemon with two projections would have them part-way through.
void populate(Metrics& metrics) {
    metrics.set_database_up(true);
    metrics.set_watermark_held(2.5s);
    for (int partition = 0; partition < 2; ++partition) {
        auto& users = metrics.partition("user_read_model", partition);
        users.set_owned(true);
        users.set_state(ProjectionState::catching_up);
        users.add_batch(100, 12ms);
        users.add_batch(100, 40ms);
        users.set_checkpoint(400 + partition);
        users.set_lag(1532, 3.25s);
        users.set_last_event_processed(std::chrono::system_clock::now());
    }
    auto& audit = metrics.partition("audit_log", 0);
    audit.set_state(ProjectionState::failed);
    audit.add_failure(FailureKind::handler);
    audit.add_dead_letter();
}

const std::set<std::string> partition_0 = {R"(projection="user_read_model")", R"(partition="0")"};

} // namespace

TEST_SUITE("promtool") {
    TEST_CASE("the exposition passes `promtool check metrics`") {
        Metrics metrics("1.2.3");
        populate(metrics);
        const auto result = testing::run_program({"promtool", "check", "metrics"}, metrics.text());
        INFO(result.output);
        CHECK(result.exit_code == 0);
        CHECK(result.output.empty()); // no lint remark either
    }
}

TEST_SUITE("metrics") {
    TEST_CASE("every metric of SPEC 8 is exposed under its fixed name, with its labels") {
        Metrics metrics("1.2.3");
        populate(metrics);
        const auto scraped = parse_exposition(metrics.text());

        for (const char* name :
             {"projectiond_events_processed_total", "projectiond_batches_total", "projectiond_checkpoint_position",
              "projectiond_lag_events", "projectiond_lag_seconds", "projectiond_last_event_processed_timestamp_seconds",
              "projectiond_dead_letters_total", "projectiond_partition_owned", "projectiond_batch_duration_seconds_sum",
              "projectiond_batch_duration_seconds_count"}) {
            CAPTURE(name);
            CHECK(scraped.count(name, partition_0) == 1);
        }
        CHECK(scraped.types.at("projectiond_events_processed_total") == "counter");
        CHECK(scraped.types.at("projectiond_batch_duration_seconds") == "histogram");
        CHECK(scraped.types.at("projectiond_projection_state") == "gauge");
        CHECK(scraped.count("projectiond_batch_duration_seconds_bucket", partition_0) == 16);
        for (const char* bound : {"0.001", "0.01", "0.1", "1", "10", "60", "+Inf"}) {
            CAPTURE(bound);
            CHECK(scraped.count("projectiond_batch_duration_seconds_bucket",
                                {R"(projection="user_read_model")", R"(partition="0")",
                                 std::string("le=\"") + bound + "\""}) == 1);
        }
        for (const char* kind : {"handler", "database", "fenced"}) {
            CAPTURE(kind);
            CHECK(scraped.count("projectiond_failures_total", {R"(projection="user_read_model")", R"(partition="0")",
                                                               std::string("kind=\"") + kind + "\""}) == 1);
        }
        for (const char* state : {"starting", "standby", "catching_up", "caught_up", "paused", "rebuilding", "failed",
                                  "waiting_for_database", "stopped"}) {
            CAPTURE(state);
            CHECK(scraped.count("projectiond_projection_state", {R"(projection="user_read_model")", R"(partition="0")",
                                                                 std::string("state=\"") + state + "\""}) == 1);
        }
        // Daemon-wide: no projection label.
        CHECK(scraped.series.at("projectiond_watermark_held_seconds") == 2.5);
        CHECK(scraped.series.at("projectiond_database_up") == 1);
        CHECK(scraped.series.at(R"(projectiond_build_info{version="1.2.3"})") == 1);

        CHECK(scraped.value("projectiond_events_processed_total", partition_0) == 200);
        CHECK(scraped.value("projectiond_batches_total", partition_0) == 2);
        CHECK(scraped.value("projectiond_batch_duration_seconds_count", partition_0) == 2);
        CHECK(scraped.value("projectiond_batch_duration_seconds_sum", partition_0) == doctest::Approx(0.052));
        CHECK(scraped.value("projectiond_batch_duration_seconds_bucket",
                            {R"(projection="user_read_model")", R"(partition="0")", R"(le="0.025")"}) == 1);
        CHECK(scraped.value("projectiond_checkpoint_position", partition_0) == 400);
        CHECK(scraped.value("projectiond_lag_events", partition_0) == 1532);
        CHECK(scraped.value("projectiond_lag_seconds", partition_0) == 3.25);
        CHECK(scraped.value("projectiond_partition_owned", partition_0) == 1);
        CHECK(scraped.value("projectiond_failures_total", {R"(projection="audit_log")", R"(kind="handler")"}) == 1);
        CHECK(scraped.value("projectiond_dead_letters_total", {R"(projection="audit_log")"}) == 1);
    }

    TEST_CASE("the state is one-hot: 1 for the current state, 0 for the eight others") {
        Metrics metrics("1.2.3");
        auto& partition = metrics.partition("p", 0);
        const std::set<std::string> p0 = {R"(projection="p")", R"(partition="0")"};
        for (const ProjectionState state : observability::projection_states) {
            partition.set_state(state);
            const auto scraped = parse_exposition(metrics.text());
            const std::string current = std::string("state=\"") + std::string(to_string(state)) + "\"";
            CAPTURE(current);
            CHECK(scraped.value("projectiond_projection_state", {R"(projection="p")", current}) == 1);
            double total = 0;
            for (const auto& [series, value] : scraped.series) {
                if (series.starts_with("projectiond_projection_state{")) {
                    total += value;
                }
            }
            CHECK(total == 1);
        }
    }

    TEST_CASE("a new partition starts at zero, not owned, in state starting") {
        Metrics metrics("1.2.3");
        metrics.partition("fresh", 3);
        const auto scraped = parse_exposition(metrics.text());
        const std::set<std::string> labels = {R"(projection="fresh")", R"(partition="3")"};
        CHECK(scraped.value("projectiond_events_processed_total", labels) == 0);
        CHECK(scraped.value("projectiond_partition_owned", labels) == 0);
        CHECK(scraped.value("projectiond_lag_events", labels) == 0);
        CHECK(scraped.value("projectiond_projection_state", {R"(projection="fresh")", R"(state="starting")"}) == 1);
    }

    TEST_CASE("a removed projection's series disappear, the others' stay") {
        Metrics metrics("1.2.3");
        populate(metrics);
        metrics.remove_projection("user_read_model");
        const std::string text = metrics.text();
        CHECK(text.find("user_read_model") == std::string::npos);
        const auto scraped = parse_exposition(text);
        CHECK(scraped.count("projectiond_events_processed_total", {R"(projection="audit_log")"}) == 1);
        CHECK(scraped.count("projectiond_projection_state", {R"(projection="audit_log")"}) == 9);
        // Asked for again later (re-added by a reload), it starts afresh.
        metrics.partition("user_read_model", 0);
        CHECK(parse_exposition(metrics.text()).value("projectiond_events_processed_total", partition_0) == 0);
    }

    TEST_CASE("a removed partition's series disappear, its siblings' stay") {
        Metrics metrics("1.2.3");
        populate(metrics);
        metrics.remove_partition("user_read_model", 1);
        const auto scraped = parse_exposition(metrics.text());
        CHECK(scraped.count("projectiond_events_processed_total", {R"(projection="user_read_model")"}) == 1);
        CHECK(scraped.count("projectiond_lag_events", {R"(partition="1")"}) == 0);
        CHECK(scraped.count("projectiond_projection_state", {R"(partition="1")"}) == 0);
    }

    TEST_CASE("asking again for a partition returns the same series, so counters survive a reload") {
        Metrics metrics("1.2.3");
        auto& first = metrics.partition("user_read_model", 0);
        first.add_batch(7, 1ms);
        first.add_failure(FailureKind::database);
        auto& again = metrics.partition("user_read_model", 0);
        CHECK(&again == &first);
        again.add_batch(3, 1ms);
        const auto scraped = parse_exposition(metrics.text());
        CHECK(scraped.value("projectiond_events_processed_total", partition_0) == 10);
        CHECK(scraped.value("projectiond_batches_total", partition_0) == 2);
        CHECK(scraped.value("projectiond_failures_total", {R"(partition="0")", R"(kind="database")"}) == 1);
    }

    TEST_CASE("runners update while scrapes serialize, and no increment is lost") {
        Metrics metrics("1.2.3");
        constexpr int partitions = 4;
        constexpr int batches = 20000;
        std::vector<std::thread> runners;
        for (int p = 0; p < partitions; ++p) {
            runners.emplace_back([&metrics, p] {
                auto& mine = metrics.partition("busy", p);
                for (int i = 0; i < batches; ++i) {
                    mine.add_batch(2, 1ms);
                    mine.set_checkpoint(i);
                    mine.set_state(i % 2 == 0 ? ProjectionState::catching_up : ProjectionState::caught_up);
                }
            });
        }
        for (int scrape = 0; scrape < 50; ++scrape) {
            const auto scraped = parse_exposition(metrics.text());
            double hot = 0;
            for (const auto& [series, value] : scraped.series) {
                if (series.starts_with("projectiond_projection_state{")) {
                    hot += value;
                }
            }
            CHECK(hot == static_cast<double>(scraped.count("projectiond_projection_state") / 9));
        }
        for (auto& runner : runners) {
            runner.join();
        }
        const auto scraped = parse_exposition(metrics.text());
        for (int p = 0; p < partitions; ++p) {
            const std::set<std::string> labels = {R"(projection="busy")", "partition=\"" + std::to_string(p) + "\""};
            CHECK(scraped.value("projectiond_events_processed_total", labels) == 2.0 * batches);
            CHECK(scraped.value("projectiond_batch_duration_seconds_count", labels) == batches);
        }
    }
}
