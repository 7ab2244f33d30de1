// A plugin written with <projectiond/handler.hpp>, to exercise the C++ layer:
// the constructor throws for the projection "refuse", handle() throws for
// "Rejected" events, and binds parameters of every kind otherwise.

#include <projectiond/handler.hpp>

#include <optional>
#include <stdexcept>
#include <string>

namespace {

class Rules {
public:
    explicit Rules(const projectiond::Context& context) : projection_(context.projection()) {
        if (projection_ == "refuse") {
            throw std::runtime_error("no rules for " + projection_);
        }
        context.log(PROJECTIOND_LOG_INFO, "rules ready for partition " + std::to_string(context.partition()));
    }

    void handle(const projectiond::Event& event, projectiond::Transaction& tx) {
        if (event.event_type == "Rejected") {
            throw std::invalid_argument("rejected " + std::string(event.event_id));
        }
        const std::optional<int> absent;
        tx.execute("SELECT $1, $2, $3, $4, $5, $6, $7", projection_, event.global_position, 2.5, true, std::nullopt,
                   absent, event.payload);
    }

private:
    std::string projection_;
};

} // namespace

PROJECTIOND_HANDLER_PLUGIN(Rules, "cpp_rules")
