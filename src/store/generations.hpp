#pragma once
// The generations of a projection: the live one, which readers see, and, while
// a new version (or `projectiond rebuild`) is built blue/green beside it, the
// building one. Each has its checkpoints, its schema and the definition it
// was built from (docs/versions.md).

#include "config/config.hpp"
#include "store/connection.hpp"

#include <optional>
#include <string>
#include <vector>

namespace projectiond::store {

struct Generation {
    int generation = 1;
    int version = 1;
    std::string stage = "live"; // live | building | retired
    std::optional<std::string> schema;
    int partitions = 1;
    std::string definition; // the projection it runs, as a configuration document ("" when unknown)
    std::optional<std::string> created_at;
};

struct Registration {
    Generation live;
    std::optional<Generation> building;
    // The live generation runs the configuration as it is; when a new
    // version is being built, it runs `live.definition` instead (the version
    // it was built from), or nothing when that is not known.
    bool live_runs_configuration = true;
    // The configuration cannot run as it is (a partition count that changed
    // without a rebuild, a schema that changed without a version): said
    // with what to do; nothing was changed.
    std::optional<std::string> refusal;
    std::vector<std::string> notes; // what changed, for the log
};

// Registers a projection for its configuration, creating what is missing:
// its row, its live generation (and schema), and, when the configured
// version differs from the live one's or `rebuild` is asked, a building
// generation in a schema of its own (an unfinished build of another
// definition is abandoned: its schema dropped). One transaction, one daemon
// at a time per projection; safe to call again.
Registration register_projection(Connection& conn, const config::Projection& projection, bool rebuild = false);

// A projection without schema or version (tests and benchmarks).
Registration register_projection(Connection& conn, const std::string& name, int partitions);

// Asks every daemon to rebuild the projection blue/green (`projectiond rebuild`).
void request_rebuild(Connection& conn, const std::string& projection);

// What a daemon needs to know about a projection's generations right now.
struct GenerationState {
    int live_generation = 1;
    std::optional<int> building_generation;
    bool rebuild_requested = false;
    bool swap_requested = false; // a swap is about to happen: the live generation holds still
    bool paused = false;
    std::optional<std::string> resumed_at;
};
std::vector<std::pair<std::string, GenerationState>> generation_states(Connection& conn,
                                                                       const std::vector<std::string>& projections);

// Tries to swap the building generation in (see projectiond_swap_generation).
bool swap_generation(Connection& conn, const std::string& projection, int building);
// Lets the live generation hold still for a moment before a swap, or not.
void request_swap(Connection& conn, const std::string& projection, bool requested);

// Drops the schemas and rows of a projection's retired generations; returns
// the schemas dropped.
std::vector<std::string> prune_generations(Connection& conn, const std::string& projection);

// Sets the search_path of the current transaction (LOCAL) or session to
// `schema`, then what it was: unqualified names resolve in the projection's
// schema first.
void use_schema(Connection& conn, const std::string& schema, bool local);

// The same for a generation's schema as the database records it now: a swap
// renames schemas, and a runner of the generation swapped in keeps working.
// $1 projection, $2 generation; `local` for the transaction only.
std::string generation_search_path_sql(bool local);

} // namespace projectiond::store
