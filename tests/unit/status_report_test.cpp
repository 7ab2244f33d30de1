#include "observability/status_report.hpp"
#include "config/loader.hpp"

#include <doctest/doctest.h>

using namespace projectiond;

namespace {
store::PartitionProgress stored(const std::string& name, std::int64_t position, std::int64_t remaining) {
    store::PartitionProgress p;
    p.projection = name;
    p.has_checkpoint = true;
    p.last_global_position = position;
    p.events_processed = position;
    p.remaining = remaining;
    return p;
}

store::StoreProgress store_of(std::int64_t total, std::vector<store::PartitionProgress> partitions) {
    store::StoreProgress progress;
    progress.total_events = total;
    progress.max_global_position = total;
    progress.partitions = std::move(partitions);
    return progress;
}

const config::Config walkthrough = config::parse_config("projections:\n  - name: demo\n    log: true\n", "w.yaml");
} // namespace

TEST_SUITE("status report") {
    TEST_CASE("before the first checkpoint: the reference's 'Not started' lines") {
        const auto progress = store_of(20, {});
        const auto entries = observability::status_entries(progress, walkthrough, {});
        CHECK(observability::render_status_text(progress, entries) == "Projection: demo\n"
                                                            "Current checkpoint position: 0\n"
                                                            "Total events in store: 20\n"
                                                            "Status: Not started (will process all 20 events)\n");
    }

    TEST_CASE("before the first checkpoint on a store too large to count: the estimate is said once, plainly") {
        auto progress = store_of(5000057, {});
        progress.total_estimated = true;
        const auto entries = observability::status_entries(progress, walkthrough, {});
        const std::string text = observability::render_status_text(progress, entries);
        CHECK(text.find("Status: Not started (will process all of about 5000057 events)\n") != std::string::npos);
        CHECK(text.find("all about") == std::string::npos);
    }

    TEST_CASE("part-way: the reference's 'Behind by' line with one decimal") {
        const auto progress = store_of(20, {stored("demo", 5, 15)});
        const auto text = observability::render_status_text(progress, observability::status_entries(progress, walkthrough, {}));
        CHECK(text == "Projection: demo\n"
                      "Current checkpoint position: 5\n"
                      "Total events in store: 20\n"
                      "Status: Behind by 15 events (25.0% complete)\n");
    }

    TEST_CASE("done: the reference's 'Caught up' line") {
        const auto progress = store_of(20, {stored("demo", 20, 0)});
        const auto text = observability::render_status_text(progress, observability::status_entries(progress, walkthrough, {}));
        CHECK(text.find("Status: Caught up (all events processed)\n") != std::string::npos);
    }

    TEST_CASE("a failed projection shows its error and position") {
        auto p = stored("demo", 5, 15);
        p.state = "failed";
        p.last_error = "duplicate key";
        p.failed_position = 6;
        p.failed_event_id = "11111111-2222-3333-4444-555555555555";
        const auto failed = store_of(20, {p});
        const auto entries = observability::status_entries(failed, walkthrough, {});
        CHECK(observability::render_status_text(failed, entries)
                  .find("Status: Failed at position 6 (event 11111111-2222-3333-4444-555555555555): duplicate key\n") !=
              std::string::npos);
        CHECK(observability::any_failed(entries));
        CHECK(observability::render_status_json(failed, entries)["projections"][0]["status"] == "failed");
    }

    TEST_CASE("a healthy projection does not make status fail") {
        const auto progress = store_of(20, {stored("demo", 5, 15)});
        CHECK_FALSE(observability::any_failed(observability::status_entries(progress, walkthrough, {})));
    }

    TEST_CASE("a paused projection says so, with how far behind it is") {
        auto p = stored("demo", 5, 15);
        p.paused = true;
        const auto progress = store_of(20, {p});
        const auto entries = observability::status_entries(progress, walkthrough, {});
        CHECK(observability::render_status_text(progress, entries).find("Status: Paused (behind by 15 events)") !=
              std::string::npos);
        CHECK(observability::render_status_json(progress, entries)["projections"][0]["status"] == "paused");
    }

    TEST_CASE("gaps in positions are explained next to the total, not left to look like a contradiction") {
        auto progress = store_of(5141, {stored("demo", 5150, 0)});
        progress.max_global_position = 5150;
        const auto text = observability::render_status_text(progress, observability::status_entries(progress, walkthrough, {}));
        CHECK(text.find("Current checkpoint position: 5150\n") != std::string::npos);
        CHECK(text.find("Total events in store: 5141 (positions run up to 5150: rolled-back appends leave gaps)\n") !=
              std::string::npos);
    }

    TEST_CASE("counts above a million are estimates and say so") {
        auto p = stored("demo", 5, 3000000);
        p.remaining_estimated = true;
        auto progress = store_of(3000005, {p});
        progress.total_estimated = true;
        const auto text = observability::render_status_text(progress, observability::status_entries(progress, walkthrough, {}));
        CHECK(text.find("Total events in store: about 3000005\n") != std::string::npos);
        CHECK(text.find("Status: Behind by about 3000000 events") != std::string::npos);
    }

    TEST_CASE("partitions get a header each; unknown stored ones are marked") {
        auto p0 = stored("split", 3, 1);
        p0.partitions = 2;
        auto p1 = stored("split", 4, 0);
        p1.partition = 1;
        p1.partitions = 2;
        const auto progress = store_of(4, {p0, p1});
        const auto text = observability::render_status_text(progress, observability::status_entries(progress, walkthrough, {}));
        CHECK(text.find("Projection: split (partition 0 of 2) (not in the configuration)\n") != std::string::npos);
        CHECK(text.find("Projection: split (partition 1 of 2) (not in the configuration)\n") != std::string::npos);
        CHECK(text.find("Projection: demo\n") != std::string::npos);
    }

    TEST_CASE("names select projections; an unknown name is a usage error") {
        const auto progress = store_of(1, {stored("other", 1, 0)});
        CHECK(observability::status_entries(progress, walkthrough, {"other"}).size() == 1);
        std::vector<std::string> unknown;
        observability::status_entries(progress, walkthrough, {"missing"}, &unknown);
        CHECK(unknown == std::vector<std::string>{"missing"});
    }

    TEST_CASE("JSON carries the same facts") {
        const auto progress = store_of(20, {stored("demo", 5, 15)});
        const auto json = observability::render_status_json(progress, observability::status_entries(progress, walkthrough, {}));
        CHECK(json["total_events"] == 20);
        const auto& demo = json["projections"][0];
        CHECK(demo["name"] == "demo");
        CHECK(demo["checkpoint"] == 5);
        CHECK(demo["behind"] == 15);
        CHECK(demo["status"] == "behind");
        CHECK(demo["percent_complete"] == doctest::Approx(25.0));
        CHECK(demo["error"].is_null());
    }
}
