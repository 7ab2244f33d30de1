#include "cli/command_context.hpp"
#include "cli/commands.hpp"
#include "cli/exit_codes.hpp"
#include "store/frontier.hpp"
#include "store/migrations.hpp"

#include <fmt/format.h>

namespace projectiond::cli {

int run_migrate(const GlobalOptions& options) {
    const config::Config config = load_configuration(options, false);
    store::Connection conn = connect(options, config);
    const int applied = store::migrate(conn, [](const store::Migration& migration) {
        fmt::print("Applied migration {}\n", migration.name);
        std::fflush(stdout);
    });
    const store::SchemaState state = store::schema_state(conn);
    if (applied == 0) {
        fmt::print("Schema is up to date (version {}); nothing to apply\n", state.applied_version);
    } else {
        fmt::print("Schema is now at version {}\n", state.applied_version);
    }
    // After a restore or a switch-over into another cluster: order whatever
    // is appended from now on after everything that was copied in.
    if (store::begin_epoch_if_moved(conn)) {
        fmt::print("The store holds rows copied from another cluster: began a new store epoch, so events appended\n"
                   "from now on are ordered after them. Projections can process again.\n");
    }
    // After a logical-replication switch-over (subscription disabled,
    // sequences set): projections held back until now may process.
    const store::SwitchOver switch_over = store::record_switch_over(conn);
    for (const std::string& subscription : switch_over.subscriptions) {
        if (switch_over.recorded) {
            fmt::print("Switched over from logical replication (subscription '{}', disabled): projections can "
                       "process again.\n",
                       subscription);
        } else if (switch_over.last_position == 0) {
            fmt::print("Not switched over from logical replication (subscription '{}', disabled): nothing has been "
                       "replicated into events, so there is nothing to switch over from. Drop the subscription if "
                       "it is not needed (DROP SUBSCRIPTION {}); until then projections stay held back.\n",
                       subscription, subscription);
        } else {
            fmt::print("Not switched over from logical replication yet (subscription '{}', disabled): the events' "
                       "sequence would hand out {} next, not past the replicated events (up to position {}). Set "
                       "the sequences past the replicated values (README, \"Moving the event store\"), then run "
                       "`projectiond migrate` again; until then projections stay held back.\n",
                       subscription, switch_over.next_value, switch_over.last_position);
        }
    }
    return exit_ok;
}

} // namespace projectiond::cli
