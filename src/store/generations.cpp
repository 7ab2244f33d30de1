#include "store/generations.hpp"

#include "config/loader.hpp"
#include "store/database_error.hpp"
#include "store/migrations.hpp"
#include "store/transaction.hpp"

#include <fmt/format.h>

namespace projectiond::store {

namespace {

std::optional<std::string> text_param(const std::optional<std::string>& value) {
    return value;
}

std::optional<Generation> load_generation(Connection& conn, const std::string& projection, int generation) {
    const Result row = conn.exec(R"sql(
SELECT generation, version, stage, schema_name, partitions, definition, created_at::text
  FROM projectiond_generations WHERE projection_name = $1 AND generation = $2::integer)sql",
                                 {projection, std::to_string(generation)});
    if (row.rows() == 0) {
        return std::nullopt;
    }
    Generation g;
    g.generation = static_cast<int>(row.int64(0, 0));
    g.version = static_cast<int>(row.int64(0, 1));
    g.stage = std::string(row.text(0, 2));
    g.schema = row.optional_text(0, 3);
    g.partitions = static_cast<int>(row.int64(0, 4));
    g.definition = std::string(row.text(0, 5));
    g.created_at = row.optional_text(0, 6);
    return g;
}

void insert_generation(Connection& conn, const std::string& projection, const Generation& g,
                       const std::optional<std::string>& destination) {
    conn.exec(R"sql(
INSERT INTO projectiond_generations
       (projection_name, generation, version, stage, schema_name, destination, partitions, definition, live_since)
VALUES ($1, $2::integer, $3::integer, $4, $5, $6, $7::integer, $8, CASE WHEN $4 = 'live' THEN now() END))sql",
              {projection, std::to_string(g.generation), std::to_string(g.version), g.stage, text_param(g.schema),
               destination, std::to_string(g.partitions), g.definition});
}

void create_checkpoints(Connection& conn, const std::string& projection, int generation, int partitions) {
    conn.exec(R"sql(
INSERT INTO projection_checkpoints (projection_name, generation, partition_index, partition_count)
SELECT $1, $2::integer, i, $3::integer FROM generate_series(0, $3::integer - 1) AS i
ON CONFLICT (projection_name, generation, partition_index) DO NOTHING)sql",
              {projection, std::to_string(generation), std::to_string(partitions)});
}

bool schema_exists(Connection& conn, const std::string& schema) {
    return conn.exec("SELECT 1 FROM pg_namespace WHERE nspname = $1", {schema}).rows() > 0;
}

void create_schema(Connection& conn, const std::string& schema) {
    conn.exec(fmt::format("CREATE SCHEMA IF NOT EXISTS {}",
                          std::string(conn.exec("SELECT quote_ident($1)", {schema}).text(0, 0))));
}

void drop_schema(Connection& conn, const std::string& schema) {
    conn.exec(fmt::format("DROP SCHEMA IF EXISTS {} CASCADE",
                          std::string(conn.exec("SELECT quote_ident($1)", {schema}).text(0, 0))));
}

// Forgets a generation that will never be live: its schema, checkpoints and
// dead letters.
void abandon(Connection& conn, const std::string& projection, const Generation& g) {
    // The checkpoints first: a batch of the generation takes its checkpoint
    // row before its tables, so taking them in the same order cannot deadlock.
    const Params key{projection, std::to_string(g.generation)};
    conn.exec("DELETE FROM projection_checkpoints WHERE projection_name = $1 AND generation = $2::integer", key);
    if (g.schema) {
        drop_schema(conn, *g.schema);
    }
    conn.exec("DELETE FROM projection_dead_letters WHERE projection_name = $1 AND generation = $2::integer", key);
    conn.exec("DELETE FROM projectiond_generations WHERE projection_name = $1 AND generation = $2::integer", key);
    conn.exec("UPDATE projectiond_projections SET building_generation = NULL, swap_requested_at = NULL "
              "WHERE projection_name = $1 AND building_generation = $2::integer",
              key);
}

// Whether a stored definition describes the same work as the configuration.
bool same_definition(const std::string& stored, const config::Projection& configured) {
    if (stored.empty()) {
        return false;
    }
    try {
        const config::Config parsed = config::parse_config(stored, "(stored definition)");
        return parsed.projections.size() == 1 && parsed.projections.front().same_work(configured);
    } catch (const std::exception&) {
        return false;
    }
}

} // namespace

Registration register_projection(Connection& conn, const config::Projection& p, bool rebuild) {
    Registration out;
    Transaction tx(conn);
    // One projection's generations change under one lock, so that two daemons
    // starting together agree.
    conn.exec("SELECT pg_advisory_xact_lock($1::integer, hashtext($2))",
              {std::to_string(projection_creation_lock_namespace), p.name});
    conn.exec("INSERT INTO projectiond_projections (projection_name) VALUES ($1) "
              "ON CONFLICT (projection_name) DO NOTHING",
              {p.name});
    const Result state = conn.exec("SELECT live_generation, building_generation, rebuild_requested_at IS NOT NULL "
                                   "FROM projectiond_projections WHERE projection_name = $1 FOR UPDATE",
                                   {p.name});
    const int live_generation = static_cast<int>(state.int64(0, 0));
    std::optional<Generation> building;
    if (!state.is_null(0, 1)) {
        building = load_generation(conn, p.name, static_cast<int>(state.int64(0, 1)));
    }
    rebuild = rebuild || state.boolean(0, 2);

    std::optional<Generation> live = load_generation(conn, p.name, live_generation);
    if (!live) {
        // A new projection: its first generation is live from the start.
        live = Generation{live_generation, p.version, "live", p.schema, p.partitions, p.definition, std::nullopt};
        if (p.schema) {
            create_schema(conn, *p.schema);
        }
        insert_generation(conn, p.name, *live, std::nullopt);
    }

    const bool version_changed = p.version != live->version;
    const bool rebuild_asked = rebuild;
    rebuild = false;
    if (!version_changed) {
        if (p.schema != live->schema) {
            out.refusal = live->schema
                              ? fmt::format("projection '{}' lives in schema '{}' (version {}); moving it to {} needs "
                                            "a new version: bump `version:` and it is rebuilt there beside the live one",
                                            p.name, *live->schema, live->version,
                                            p.schema ? fmt::format("schema '{}'", *p.schema) : "no schema")
                              : fmt::format("projection '{}' has no schema yet; to give it schema '{}', also bump "
                                            "`version:` (to {}) so that its read model is rebuilt there beside the "
                                            "live one",
                                            p.name, p.schema.value_or(""), live->version + 1);
            return out; // rolled back
        }
        const Result counts = conn.exec("SELECT min(partition_count), max(partition_count) FROM projection_checkpoints "
                                        "WHERE projection_name = $1 AND generation = $2::integer",
                                        {p.name, std::to_string(live->generation)});
        if (!counts.is_null(0, 0) && (counts.int64(0, 0) != p.partitions || counts.int64(0, 1) != p.partitions)) {
            const auto stored = counts.int64(0, 0) != p.partitions ? counts.int64(0, 0) : counts.int64(0, 1);
            out.refusal = fmt::format(
                "projection '{}' is configured for {} partitions but was processed in {}: aggregates would change "
                "partition mid-stream. Keep `partitions: {}`, or rebuild the read model (a `version:` bump with a "
                "`schema:`, or clear its tables and run `projectiond reset {}`)",
                p.name, p.partitions, stored, stored, p.name);
            return out; // rolled back
        }
        // A build of another version is no longer wanted; a rebuild of this
        // version goes on, unless the definition changed under it (then it
        // starts over, below).
        if (building && building->version != p.version) {
            abandon(conn, p.name, *building);
            out.notes.push_back(fmt::format("abandoned the unfinished build of version {}{}: the configuration "
                                            "asks for version {} again",
                                            building->version,
                                            building->schema ? fmt::format(" (schema {})", *building->schema) : "",
                                            p.version));
            building.reset();
        } else if (building || rebuild_asked) {
            rebuild = true; // a rebuild of this version, asked for or going on
        }
        conn.exec("UPDATE projectiond_generations SET definition = $3, partitions = $4::integer "
                  "WHERE projection_name = $1 AND generation = $2::integer",
                  {p.name, std::to_string(live->generation), p.definition, std::to_string(p.partitions)});
        live->definition = p.definition;
        live->partitions = p.partitions;
        create_checkpoints(conn, p.name, live->generation, p.partitions);
        out.live_runs_configuration = true;
    }
    if (version_changed || rebuild) {
        if (!p.schema) {
            out.refusal = fmt::format("projection '{}' has no schema, so it cannot be rebuilt blue/green: give it a "
                                      "`schema:` (and a new `version:`), or clear its tables and run "
                                      "`projectiond reset {}`",
                                      p.name, p.name);
            return out;
        }
        const std::string target = version_changed ? fmt::format("{}_v{}", *p.schema, p.version)
                                                   : fmt::format("{}_rebuild_v{}", *p.schema, p.version);
        const bool keep = building && building->version == p.version && building->schema == target &&
                          same_definition(building->definition, p);
        if (!keep) {
            // The next build's number is above any abandoned here: runners of
            // the abandoned build may still run (in this daemon until its
            // reload retires them, in others until they notice), and under
            // the same number they would be granted the new build's
            // partitions and apply their definition into its schema.
            const int abandoned = building ? building->generation : 0;
            if (building) {
                abandon(conn, p.name, *building);
                out.notes.push_back(fmt::format("abandoned the unfinished build of version {}{}", building->version,
                                                building->schema ? fmt::format(" (schema {})", *building->schema)
                                                                 : ""));
                building.reset();
            }
            if (schema_exists(conn, target)) {
                const Result ours = conn.exec("SELECT generation FROM projectiond_generations "
                                              "WHERE projection_name = $1 AND schema_name = $2 AND stage = 'retired'",
                                              {p.name, target});
                if (ours.rows() == 0) {
                    out.refusal = fmt::format("schema '{}' exists and projectiond did not make it for projection "
                                              "'{}': drop or rename it, then reload, to build version {} there",
                                              target, p.name, p.version);
                    return out;
                }
                drop_schema(conn, target);
                conn.exec("DELETE FROM projectiond_generations WHERE projection_name = $1 AND schema_name = $2 "
                          "AND stage = 'retired'",
                          {p.name, target});
                out.notes.push_back(fmt::format("dropped the retired schema {} to build version {} there", target,
                                                p.version));
            }
            const Result next = conn.exec(
                "SELECT greatest(max(generation), (SELECT live_generation FROM projectiond_projections "
                "WHERE projection_name = $1), $2::integer) + 1 FROM projectiond_generations WHERE projection_name = $1",
                {p.name, std::to_string(abandoned)});
            building = Generation{static_cast<int>(next.int64(0, 0)), p.version, "building", target, p.partitions,
                                  p.definition, std::nullopt};
            create_schema(conn, target);
            insert_generation(conn, p.name, *building, p.schema);
            create_checkpoints(conn, p.name, building->generation, p.partitions);
            conn.exec("UPDATE projectiond_projections SET building_generation = $2::integer, updated_at = now() "
                      "WHERE projection_name = $1",
                      {p.name, std::to_string(building->generation)});
            out.notes.push_back(fmt::format("building version {} of '{}' in schema {}, from the first event, beside "
                                            "the live version {} (readers keep seeing the live one until the new "
                                            "one has caught up and is swapped in)",
                                            p.version, p.name, target, live->version));
        }
        conn.exec("UPDATE projectiond_projections SET rebuild_requested_at = NULL WHERE projection_name = $1",
                  {p.name});
        // A new version: the live one runs as it was built. A rebuild of the
        // same version: both run the configuration.
        out.live_runs_configuration = !version_changed;
    }
    out.live = *live;
    out.building = building;
    tx.commit();
    return out;
}

Registration register_projection(Connection& conn, const std::string& name, int partitions) {
    config::Projection projection;
    projection.name = name;
    projection.partitions = partitions;
    return register_projection(conn, projection);
}

void request_rebuild(Connection& conn, const std::string& projection) {
    Transaction tx(conn);
    conn.exec("UPDATE projectiond_projections SET rebuild_requested_at = now(), updated_at = now() "
              "WHERE projection_name = $1",
              {projection});
    conn.exec("SELECT pg_notify('projectiond_control', $1)", {projection});
    tx.commit();
}

std::vector<std::pair<std::string, GenerationState>> generation_states(Connection& conn,
                                                                       const std::vector<std::string>& projections) {
    std::string names = "{";
    for (std::size_t i = 0; i < projections.size(); ++i) {
        names += (i == 0 ? "\"" : ",\"");
        for (const char c : projections[i]) {
            if (c == '"' || c == '\\') {
                names += '\\';
            }
            names += c;
        }
        names += '"';
    }
    names += "}";
    const Result rows = conn.exec(R"sql(
SELECT projection_name, live_generation, building_generation, rebuild_requested_at IS NOT NULL,
       swap_requested_at IS NOT NULL AND swap_requested_at > now() - interval '10 seconds',
       paused, coalesce(resumed_at::text, '')
  FROM projectiond_projections WHERE projection_name = ANY ($1::text[]))sql",
                                  {names});
    std::vector<std::pair<std::string, GenerationState>> out;
    for (int row = 0; row < rows.rows(); ++row) {
        GenerationState s;
        s.live_generation = static_cast<int>(rows.int64(row, 1));
        if (!rows.is_null(row, 2)) {
            s.building_generation = static_cast<int>(rows.int64(row, 2));
        }
        s.rebuild_requested = rows.boolean(row, 3);
        s.swap_requested = rows.boolean(row, 4);
        s.paused = rows.boolean(row, 5);
        s.resumed_at = std::string(rows.text(row, 6));
        out.emplace_back(std::string(rows.text(row, 0)), s);
    }
    return out;
}

bool swap_generation(Connection& conn, const std::string& projection, int building) {
    const Result done =
        conn.exec("SELECT projectiond_swap_generation($1, $2::integer)", {projection, std::to_string(building)});
    return done.boolean(0, 0);
}

void request_swap(Connection& conn, const std::string& projection, bool requested) {
    conn.exec(requested ? "UPDATE projectiond_projections SET swap_requested_at = now() WHERE projection_name = $1 "
                          "AND swap_requested_at IS NULL"
                        : "UPDATE projectiond_projections SET swap_requested_at = NULL WHERE projection_name = $1",
              {projection});
    conn.exec("SELECT pg_notify('projectiond_control', $1)", {projection});
}

std::vector<std::string> prune_generations(Connection& conn, const std::string& projection) {
    Transaction tx(conn);
    conn.exec("SELECT pg_advisory_xact_lock($1::integer, hashtext($2))",
              {std::to_string(projection_creation_lock_namespace), projection});
    const Result retired = conn.exec("SELECT generation, schema_name FROM projectiond_generations "
                                     "WHERE projection_name = $1 AND stage = 'retired' ORDER BY generation",
                                     {projection});
    std::vector<std::string> dropped;
    for (int row = 0; row < retired.rows(); ++row) {
        if (!retired.is_null(row, 1)) {
            const std::string schema(retired.text(row, 1));
            drop_schema(conn, schema);
            dropped.push_back(schema);
        }
        const Params key{projection, std::string(retired.text(row, 0))};
        conn.exec("DELETE FROM projection_checkpoints WHERE projection_name = $1 AND generation = $2::integer", key);
        conn.exec("DELETE FROM projection_dead_letters WHERE projection_name = $1 AND generation = $2::integer", key);
        conn.exec("DELETE FROM projectiond_generations WHERE projection_name = $1 AND generation = $2::integer", key);
    }
    tx.commit();
    return dropped;
}

std::string generation_search_path_sql(bool local) {
    return fmt::format("SELECT set_config('search_path', coalesce(quote_ident(g.schema_name) || ', ', '') || "
                       "current_setting('search_path'), {}) FROM projectiond_generations g "
                       "WHERE g.projection_name = $1 AND g.generation = $2::integer",
                       local ? "true" : "false");
}

void use_schema(Connection& conn, const std::string& schema, bool local) {
    conn.exec("SELECT set_config('search_path', quote_ident($1) || ', ' || current_setting('search_path'), $2)",
              {schema, local ? "true" : "false"});
}

} // namespace projectiond::store
