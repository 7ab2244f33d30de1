#!/usr/bin/env python3
"""A projectiond exec handler that counts the events of its projection.

projectiond starts it once per runner (projection partition), writes one JSON
line per event to its stdin and reads one JSON line back per event from its
stdout. For every event this answers with one statement,

    INSERT INTO plugin_counts (projection, n) VALUES ($1, 1)
    ON CONFLICT (projection) DO UPDATE SET n = plugin_counts.n + 1

with $1 the projection's name, which projectiond runs in the batch's
transaction: the count is exact, even though the statement is not
idempotent, because it commits or rolls back with the checkpoint.

Standard library only. Rules of the protocol that matter here:
  - exactly one line out per line in, in order;
  - flush after each reply (a pipe is block-buffered);
  - stdout is for replies only: log to stderr (it goes to projectiond's log);
  - exit when stdin ends (that is how projectiond stops its handlers).
"""

import json
import os
import sys

STATEMENT = (
    "INSERT INTO plugin_counts (projection, n) VALUES ($1, 1) "
    "ON CONFLICT (projection) DO UPDATE SET n = plugin_counts.n + 1"
)


def reply_for(event, projection):
    """The reply for one event: {"sql": [...]}, {} or {"error": "..."}."""
    return {"sql": [{"statement": STATEMENT, "params": [projection]}]}


def main():
    projection = os.environ["PROJECTIOND_PROJECTION"]
    for line in sys.stdin:
        try:
            reply = reply_for(json.loads(line), projection)
        except Exception as error:  # one bad event must not kill the handler
            reply = {"error": f"{type(error).__name__}: {error}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
