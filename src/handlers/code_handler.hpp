#pragma once
// Handlers written in code (SPEC section 11): the layer that turns events into
// SQL statements for the engine to queue in the batch's own transaction.
//
// A code handler never touches the database. It answers each event with the
// statements to run for it; the engine queues them, in event order, in the
// same pipeline as the batch's checkpoint update, so they commit or roll back
// with it and exactly-once holds for them as for SQL handlers.
//
// One instance serves one runner (one projection partition) and is used by
// that runner's thread only: handle() and stop() from that thread. (stop()
// and the destructor may also run after the thread has ended, but an exec
// child has been killed with the thread by then: call stop() before the
// thread ends for a graceful stop.) Kinds: ExecHandler (a child process speaking
// JSON lines) and PluginHandler (a shared object with the C ABI of
// <projectiond/handler.h>); make_code_handler() in code_handler_factory.hpp
// builds the one a configuration names.

#include "store/connection.hpp"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace projectiond::handlers {

// One event, as the engine read it: views of its columns, valid during the
// call that receives them. Text is as PostgreSQL prints it.
struct Event {
    std::int64_t global_position = 0;
    std::string_view bounded_context;
    std::string_view aggregate_type;
    std::string_view aggregate_id;
    std::int64_t aggregate_version = 0;
    std::string_view event_id; // uuid
    std::string_view event_type;
    std::int32_t event_version = 1;
    std::string_view payload;                 // JSON text
    std::optional<std::string_view> metadata; // JSON text; nullopt for SQL NULL
    std::optional<std::string_view> trace_id;
    std::optional<std::string_view> correlation_id;
    std::optional<std::string_view> causation_id;
    std::string_view created_at; // timestamptz as text, e.g. "2026-01-27 10:11:12.123456+00"
};

// A statement with text parameters $1..$n; nullopt binds SQL NULL.
struct Statement {
    std::string sql;
    std::vector<std::optional<std::string>> params;
    bool operator==(const Statement&) const = default;
};

// A handler's answer to one event: the statements to run for it, in order,
// or an error (a handler failure: the batch's retries and `on_error` apply).
struct Reply {
    std::vector<Statement> statements;
    std::optional<std::string> error; // for a person: what went wrong, not which event (the engine adds that)
    bool failed() const noexcept { return error.has_value(); }
};

class CodeHandler {
public:
    virtual ~CodeHandler() = default;

    // Answers `events`, in order: reply i is for events[i]. It stops after
    // the first failed reply, so a vector shorter than `events` ends with the
    // failed one, and the events after it were not handled. An empty span
    // gives an empty vector.
    //
    // Everything that goes wrong with an event is a failed reply, never an
    // exception: an error the code reports, a reply that makes no sense, a
    // timeout, a crash, a program that cannot be started, a plugin whose open
    // function fails. The handler recovers by itself (an exec child is
    // restarted, with capped backoff, on a later call).
    //
    // Throws:
    //  - store::Interrupted when a wait was abandoned because the interrupt
    //    (set_interrupt) asked to give up. No reply is returned: abandon the
    //    batch. The handler is usable again (an exec child in the middle of a
    //    batch is killed and started afresh on the next call).
    //  - std::bad_alloc. Nothing else.
    virtual std::vector<Reply> handle(std::span<const Event> events) = 0;

    // Makes waits in handle() interruptible: when `interrupt->fd` becomes
    // readable, `interrupt->give_up()` is asked whether to abandon the call.
    // The runner's store::Interrupt fits as is. The object must outlive the
    // handler or the next set_interrupt(); nullptr: uninterruptible.
    void set_interrupt(const store::Interrupt* interrupt) noexcept { interrupt_ = interrupt; }

    // Releases what the handler holds, gracefully (drain, reload, removal):
    // an exec child has its stdin closed, then gets SIGTERM, then SIGKILL, and
    // is reaped; a plugin's close() is called. Bounded in time. A later
    // handle() starts afresh. Each kind's destructor calls it.
    virtual void stop() noexcept = 0;

protected:
    const store::Interrupt* interrupt_ = nullptr;
};

} // namespace projectiond::handlers
