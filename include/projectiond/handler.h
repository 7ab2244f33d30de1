/*
 * <projectiond/handler.h>: the C ABI of projectiond handler plugins.
 *
 * A plugin is a shared object that projectiond loads into the daemon for a
 * handler written as `{plugin: /path/to/handler.so}` in its configuration. It
 * answers each event by queueing SQL statements in the batch's transaction,
 * the one that also moves the projection's checkpoint, so its database writes
 * are applied exactly once, like those of SQL handlers.
 *
 * Build one with nothing of projectiond's but this header (there is no
 * library to link):
 *
 *     cc -shared -fPIC $(pkg-config --cflags projectiond) -o handler.so handler.c
 *
 * and export the table of its functions:
 *
 *     static const struct projectiond_handler_plugin plugin = {
 *         PROJECTIOND_HANDLER_ABI_VERSION, PROJECTIOND_HANDLER_MAGIC, "my-handler",
 *         my_open, my_handle, my_close,
 *     };
 *     PROJECTIOND_HANDLER_EXPORT const struct projectiond_handler_plugin *
 *     projectiond_handler_plugin_entry(void) { return &plugin; }
 *
 * (<projectiond/handler.hpp> does this for a C++ class.)
 *
 * Life of a plugin:
 *  - projectiond loads the file once (dlopen, RTLD_NOW | RTLD_LOCAL), however
 *    many projections and partitions use it, calls
 *    projectiond_handler_plugin_entry() and checks the magic number and the
 *    ABI version. A plugin built against another version of this header is
 *    refused with a message saying to rebuild it.
 *  - Each runner (one projection partition, one thread) calls open() before
 *    its first event, handle() for each event its handler key matches, in
 *    order, and close() when it stops (drain, reload, removal of the
 *    projection). A failed open() is tried again with the next attempt.
 *  - The file is unloaded when no runner uses it any more, so a reload after
 *    all its projections changed picks up a new build. Replace the file
 *    with a new one (install(1), or write elsewhere and rename): writing
 *    over a loaded shared object in place crashes the processes using it.
 *  - One state is only ever used by one thread at a time, but several states
 *    are used by several threads at once: anything shared between states
 *    (globals, statics) needs its own locking.
 *
 * Guarantees, and what they do not cover:
 *  - Statements queued with host->execute() run in order, in the batch's
 *    transaction. If the batch fails (this handler or another one, a
 *    database error, a crash of the daemon), they are rolled back with it and
 *    the batch is retried: handle() is then called again for the same events.
 *    So the SQL a plugin queues is applied exactly once, but handle() itself
 *    runs at least once per event: anything else it does (HTTP calls, files,
 *    its own memory) must tolerate repeats. Use event->event_id as the
 *    idempotency key.
 *  - handle() never sees results: statements are queued and run after it
 *    returns, together with the rest of the batch, in one round trip. To use
 *    data from the database, write the SQL so that it reads it
 *    (INSERT ... SELECT, UPDATE ... FROM, ON CONFLICT ... DO UPDATE).
 *  - The plugin runs inside the daemon: a crash in it is a crash of the
 *    daemon (which systemd restarts, and which resumes from the last
 *    checkpoint), and a handle() that blocks holds up its projection. Never
 *    let a C++ exception or a longjmp cross these functions.
 *
 * ABI rules: every field and function below is part of ABI version
 * PROJECTIOND_HANDLER_ABI_VERSION. Any change to them, additions included,
 * comes with a new version number. The first two fields of struct
 * projectiond_handler_plugin (abi_version, magic) and the name of the entry
 * point stay as they are in every version, so that projectiond can always
 * tell what a plugin was built for.
 */
#ifndef PROJECTIOND_HANDLER_H
#define PROJECTIOND_HANDLER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the ABI this header describes. */
#define PROJECTIOND_HANDLER_ABI_VERSION 1u

/* "PRJH": marks the table as a projectiond handler plugin's. */
#define PROJECTIOND_HANDLER_MAGIC 0x50524a48u

/* The name of the function every plugin exports. */
#define PROJECTIOND_HANDLER_ENTRY_SYMBOL "projectiond_handler_plugin_entry"

#if defined(__GNUC__) || defined(__clang__)
#define PROJECTIOND_HANDLER_EXPORT __attribute__((visibility("default")))
#else
#define PROJECTIOND_HANDLER_EXPORT
#endif

/* Levels for host->log(). */
enum projectiond_log_level {
    PROJECTIOND_LOG_DEBUG = 0,
    PROJECTIOND_LOG_INFO = 1,
    PROJECTIOND_LOG_WARNING = 2,
    PROJECTIOND_LOG_ERROR = 3,
};

/*
 * One event: its columns in the events table. Every string is
 * NUL-terminated UTF-8 and valid only during the handle() call that
 * receives it; optional columns are NULL when absent.
 */
struct projectiond_event {
    int64_t global_position;
    const char* bounded_context;
    const char* aggregate_type;
    const char* aggregate_id;
    int64_t aggregate_version;
    const char* event_id; /* uuid, e.g. "3f8a2b1c-..." */
    const char* event_type;
    int32_t event_version;
    const char* payload;        /* JSON text */
    const char* metadata;       /* JSON text, or NULL */
    const char* trace_id;       /* or NULL */
    const char* correlation_id; /* or NULL */
    const char* causation_id;   /* or NULL */
    const char* created_at;     /* timestamptz as PostgreSQL prints it */
};

/* The batch's transaction, as handle() sees it (opaque). */
struct projectiond_tx;

/*
 * What projectiond offers its plugins: passed to open(), valid until
 * close() returns. The plugin needs no symbol from the daemon.
 */
struct projectiond_host {
    /*
     * Queues a statement with text parameters $1..$nparams in the batch's
     * transaction, after those queued before it. params[i] NULL binds SQL
     * NULL; a parameter is given as text, as psql would take it ("42",
     * "true", "{\"a\": 1}"), and cast in the SQL where needed ($1::jsonb).
     * The SQL and the parameters are copied: they may be freed on return.
     * Returns 0 when queued, non-zero when the call itself is wrong (tx or
     * sql NULL, nparams negative, params NULL with nparams > 0). Errors of
     * the statement itself (syntax, constraints) show when the batch runs,
     * as a failure of this event. Only during the handle() call that was
     * given `tx`.
     */
    int (*execute)(struct projectiond_tx* tx, const char* sql, int nparams, const char* const* params);

    /*
     * Gives the reason of a failure of this event, for the log, `status` and
     * the dead letters; the message is copied. Returns -1, so that handle()
     * can end with `return host->fail(tx, "unknown price rule");`.
     */
    int (*fail)(struct projectiond_tx* tx, const char* message);

    /*
     * Writes a line to projectiond's log (the journal under systemd), with
     * the projection's fields (PROJECTION=, PARTITION=). Callable from
     * open(), handle() and close(), on the thread that called them.
     */
    void (*log)(enum projectiond_log_level level, const char* message);
};

struct projectiond_handler_plugin {
    uint32_t abi_version; /* PROJECTIOND_HANDLER_ABI_VERSION; first in every ABI version */
    uint32_t magic;       /* PROJECTIOND_HANDLER_MAGIC; second in every ABI version */
    const char* name;     /* the plugin's name, for messages */

    /*
     * Opens the plugin for one projection partition: `projection` is the
     * projection's name, `partition` its partition (0 .. partitions-1).
     * Returns the state handed to handle() and close(): any non-NULL
     * pointer (a plugin without state may return `host`). On failure,
     * returns NULL after writing the reason, as a NUL-terminated string, to
     * error[0 .. error_size-1]; the open is retried with the batch, as a
     * failure of its first event.
     */
    void* (*open)(const struct projectiond_host* host, const char* projection, int partition, char* error,
                  size_t error_size);

    /*
     * Handles one event: queues its statements with host->execute(tx, ...).
     * Returns 0 on success; non-zero is a handler failure of this event (the
     * statements queued for it are dropped, the batch is rolled back and
     * retried, then `on_error` applies), with the reason given by
     * host->fail() or, without one, the number returned.
     */
    int (*handle)(void* state, const struct projectiond_event* event, struct projectiond_tx* tx);

    /* Releases the state. May be NULL when there is nothing to release. */
    void (*close)(void* state);
};

/* Every plugin defines this function (see the top of this file). */
PROJECTIOND_HANDLER_EXPORT const struct projectiond_handler_plugin* projectiond_handler_plugin_entry(void);

#ifdef __cplusplus
}
#endif

#endif /* PROJECTIOND_HANDLER_H */
