/* A plugin in plain C, to exercise the C ABI directly:
 *  - open fails for the projection "refuse";
 *  - "Rejected" events fail with a reason (host->fail);
 *  - "Silent" events fail without one (return 7);
 *  - "Double" events queue two statements, then fail: none may be kept;
 *  - any other event queues one statement with a NULL, its metadata and
 *    its position, and logs a line. */
#include <projectiond/handler.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct state {
    const struct projectiond_host* host;
    char projection[64];
};

static void* open_state(const struct projectiond_host* host, const char* projection, int partition, char* error,
                        size_t error_size) {
    struct state* state;
    if (strcmp(projection, "refuse") == 0) {
        snprintf(error, error_size, "will not work for %s/%d", projection, partition);
        return NULL;
    }
    state = calloc(1, sizeof *state);
    if (state == NULL) {
        snprintf(error, error_size, "out of memory");
        return NULL;
    }
    state->host = host;
    snprintf(state->projection, sizeof state->projection, "%s", projection);
    return state;
}

static int handle(void* opaque, const struct projectiond_event* event, struct projectiond_tx* tx) {
    struct state* state = opaque;
    const char* params[3];
    char position[32];
    if (strcmp(event->event_type, "Rejected") == 0) {
        return state->host->fail(tx, "rejected by c_rules");
    }
    if (strcmp(event->event_type, "Silent") == 0) {
        return 7;
    }
    if (strcmp(event->event_type, "Double") == 0) {
        state->host->execute(tx, "SELECT 1", 0, NULL);
        state->host->execute(tx, "SELECT 2", 0, NULL);
        return state->host->fail(tx, "half done");
    }
    snprintf(position, sizeof position, "%lld", (long long)event->global_position);
    params[0] = NULL;
    params[1] = event->metadata;
    params[2] = position;
    if (state->host->execute(tx, "SELECT $1, $2::jsonb, $3::bigint", 3, params) != 0) {
        return state->host->fail(tx, "execute refused");
    }
    if (state->host->execute(tx, NULL, 0, NULL) == 0) {
        return state->host->fail(tx, "execute accepted a NULL statement");
    }
    state->host->log(PROJECTIOND_LOG_INFO, "handled an event");
    return 0;
}

static void close_state(void* opaque) {
    free(opaque);
}

static const struct projectiond_handler_plugin plugin = {
    PROJECTIOND_HANDLER_ABI_VERSION, PROJECTIOND_HANDLER_MAGIC, "c_rules", open_state, handle, close_state,
};

PROJECTIOND_HANDLER_EXPORT const struct projectiond_handler_plugin* projectiond_handler_plugin_entry(void) {
    return &plugin;
}
