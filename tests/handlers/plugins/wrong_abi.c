/* A plugin built for an ABI this projectiond does not speak. */
#include <projectiond/handler.h>

static void* open_state(const struct projectiond_host* host, const char* projection, int partition, char* error,
                        size_t error_size) {
    (void)projection, (void)partition, (void)error, (void)error_size;
    return (void*)host;
}

static int handle(void* state, const struct projectiond_event* event, struct projectiond_tx* tx) {
    (void)state, (void)event, (void)tx;
    return 0;
}

static const struct projectiond_handler_plugin plugin = {
    PROJECTIOND_HANDLER_ABI_VERSION + 1, PROJECTIOND_HANDLER_MAGIC, "from-the-future", open_state, handle, NULL,
};

const struct projectiond_handler_plugin* projectiond_handler_plugin_entry(void) {
    return &plugin;
}
