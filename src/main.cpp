// projectiond: keeps PostgreSQL read models up to date from an event store.
#include "cli/app.hpp"

int main(int argc, char** argv) {
    return projectiond::cli::run_command_line(argc, argv);
}
