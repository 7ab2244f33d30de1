// The reference stop/resume walkthrough's projection as a projectiond plugin:
// each UserCreated event becomes a row of `users`, idempotently, and is logged
// the way the reference's demo handler prints it. examples/README.md walks
// through it, from the Go original to this file and the YAML that uses it.

#include <projectiond/handler.hpp>

#include <string>

namespace {

class UserReadModel {
public:
    explicit UserReadModel(const projectiond::Context& context) : context_(context) {}

    void handle(const projectiond::Event& event, projectiond::Transaction& tx) {
        // The payload is {"email": ..., "name": ...}: hand it to PostgreSQL as
        // jsonb and let the SQL take it apart, so the plugin needs no JSON
        // library.
        tx.execute("INSERT INTO users (id, email, name) "
                   "SELECT $1, $2::jsonb ->> 'email', $2::jsonb ->> 'name' "
                   "ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name",
                   event.aggregate_id, event.payload);
        context_.log(PROJECTIOND_LOG_DEBUG, "Processed event (position: " + std::to_string(event.global_position) +
                                                ", aggregate: " + std::string(event.aggregate_id) + ")");
    }

private:
    const projectiond::Context& context_;
};

} // namespace

PROJECTIOND_HANDLER_PLUGIN(UserReadModel, "user_read_model")
