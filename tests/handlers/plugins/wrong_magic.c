/* A shared object that exports the entry point but whose table is not a
 * projectiond handler plugin's. */
#include <projectiond/handler.h>

static const struct projectiond_handler_plugin plugin = {
    PROJECTIOND_HANDLER_ABI_VERSION, 0xdeadbeefu, "impostor", NULL, NULL, NULL,
};

const struct projectiond_handler_plugin* projectiond_handler_plugin_entry(void) {
    return &plugin;
}
