// A daemon stand-in for the "no child outlives the daemon" test: starts an
// exec handler whose child ignores SIGTERM and the end of its stdin (so only
// PR_SET_PDEATHSIG can end it), prints the child's pid, and waits to be
// killed with SIGKILL.
//
//   handler_parent PROGRAM ARG...

#include "handlers/exec_handler.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <cstdio>

int main(int argc, char** argv) {
    using namespace projectiond::handlers;
    // stdout is for the child's pid alone.
    spdlog::set_default_logger(spdlog::stderr_color_mt("handler_parent"));
    ExecSettings settings;
    settings.command.assign(argv + 1, argv + argc);
    settings.projection = "orphans";
    ExecHandler handler(settings);
    Event event;
    event.global_position = 1;
    event.event_type = "Started";
    event.payload = "{}";
    const auto replies = handler.handle(std::span<const Event>(&event, 1));
    if (replies.size() != 1 || replies[0].failed() || !handler.child_pid()) {
        std::fprintf(stderr, "handler_parent: the handler did not answer\n");
        return 1;
    }
    std::printf("child %d\n", *handler.child_pid());
    std::fflush(stdout);
    for (;;) {
        ::pause();
    }
}
