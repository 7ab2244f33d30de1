#pragma once
// The JSON-lines protocol of `exec` handlers (SPEC section 11), apart from
// any process, so it can be tested and documented on its own.
//
// To the child, one line per event: an object with every event column, named
// as in the events table; `payload` and `metadata` as JSON values, the ids and
// names as strings, positions and versions as numbers, absent values as null.
//
// From the child, one line per event, in the same order:
//   {"sql": [{"statement": "... $1 ...", "params": [...]}, ...]}
//   {}                       nothing to do for this event
//   {"error": "message"}     a handler failure
// A parameter that is a string is bound as is; a number or a boolean as its
// JSON text; null as SQL NULL; an object or array as its JSON text (for json
// and jsonb columns). "params" may be left out when there are none.

#include "handlers/code_handler.hpp"

#include <string>
#include <string_view>

namespace projectiond::handlers {

// Appends the line for `event`, '\n' included, to `out`. Throws
// std::invalid_argument when its payload or metadata is not JSON.
void append_event_line(std::string& out, const Event& event);

struct ParsedReply {
    Reply reply;
    // The line is not a reply at all (not JSON, or not of the protocol's
    // shape): the child is confused, and so may be the order of its lines.
    // reply.error says what is wrong.
    bool protocol_error = false;
};

ParsedReply parse_reply(std::string_view line);

// The start of `text` for a message: at most `limit` bytes, cut at a
// character boundary, with "..." when cut.
std::string excerpt(std::string_view text, std::size_t limit = 200);

} // namespace projectiond::handlers
