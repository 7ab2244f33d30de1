#!/usr/bin/env python3
"""The example counter (examples/exec-handler/counter.py), failing one event on
purpose, for the integration tests: faulty_counter.py MODE NAME.

For every event it answers with two statements: the example's non-idempotent
count, and a row naming the event's position in `counted` (primary key, so an
event applied twice would fail the batch rather than pass unnoticed). For the
event whose payload name is NAME (e.g. "User 7") it answers instead:
  error     {"error": "refused NAME"}
  invalid   a line that is not JSON
"""

import json
import os
import sys

mode, poison = sys.argv[1], sys.argv[2]
projection = os.environ["PROJECTIOND_PROJECTION"]
COUNT = (
    "INSERT INTO plugin_counts (projection, n) VALUES ($1, 1) "
    "ON CONFLICT (projection) DO UPDATE SET n = plugin_counts.n + 1"
)
RECORD = "INSERT INTO counted (position) VALUES ($1)"

for line in sys.stdin:
    event = json.loads(line)
    if event["payload"].get("name") == poison:
        if mode == "error":
            sys.stdout.write(json.dumps({"error": f"refused {poison}"}) + "\n")
        else:
            sys.stdout.write("this is not json\n")
    else:
        reply = {"sql": [{"statement": COUNT, "params": [projection]},
                         {"statement": RECORD, "params": [event["global_position"]]}]}
        sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
