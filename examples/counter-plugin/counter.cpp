// A projectiond handler plugin that counts the events of its projection:
// for every event it queues
//
//   INSERT INTO plugin_counts (projection, n) VALUES ($1, 1)
//   ON CONFLICT (projection) DO UPDATE SET n = plugin_counts.n + 1
//
// with $1 the projection's name, in the batch's transaction. The count is
// not idempotent on purpose: it is exact only because the statement commits
// or rolls back with the projection's checkpoint.
//
// Build it alone:  make   (see Makefile; needs projectiond's -dev package)

#include <projectiond/handler.hpp>

#include <string>

namespace {

class Counter {
public:
    explicit Counter(const projectiond::Context& context) : projection_(context.projection()) {}

    void handle(const projectiond::Event&, projectiond::Transaction& tx) {
        tx.execute("INSERT INTO plugin_counts (projection, n) VALUES ($1, 1) "
                   "ON CONFLICT (projection) DO UPDATE SET n = plugin_counts.n + 1",
                   projection_);
    }

private:
    std::string projection_;
};

} // namespace

PROJECTIOND_HANDLER_PLUGIN(Counter, "counter")
