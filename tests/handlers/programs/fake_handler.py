#!/usr/bin/env python3
"""A misbehaving-on-demand exec handler for the tests: fake_handler.py MODE [POSITION].

Modes (POSITION is the global_position the misbehaviour is for):
  echo            SELECT $1, $2 with the event's global_position and event_type
  line            SELECT $1 with the event line it read, re-encoded
  payload         SELECT $1 with the payload (as JSON text): large replies
  pid             SELECT $1 with its process id
  env             SELECT $1, $2, $3 with PROJECTIOND_PROJECTION, PROJECTIOND_PARTITION, NOTIFY_SOCKET
  stderr          like echo, and writes "handling position N" to stderr first
  error-at N      {"error": "rejected position N"} for N, else echo
  invalid-at N    "this is not json" for N, else echo
  shape-at N      {"sql": "SELECT 1"} for N (valid JSON, wrong shape), else echo
  exit-at N       writes "giving up at N" to stderr and exits with status 3 at N
  hang-at N       never answers N
  extra-at N      answers N and, in the same write, one more line nobody asked for
  stubborn        like pid, but ignores SIGTERM and the end of stdin
"""

import json
import os
import signal
import sys
import time

mode = sys.argv[1]
at = int(sys.argv[2]) if len(sys.argv) > 2 else None


def send(reply):
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()


def echo(event):
    send({"sql": [{"statement": "SELECT $1, $2", "params": [event["global_position"], event["event_type"]]}]})


if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

for line in sys.stdin:
    event = json.loads(line)
    position = event["global_position"]
    if mode == "line":
        send({"sql": [{"statement": "SELECT $1", "params": [json.dumps(event)]}]})
    elif mode == "payload":
        send({"sql": [{"statement": "SELECT $1", "params": [event["payload"]]}]})
    elif mode in ("pid", "stubborn"):
        send({"sql": [{"statement": "SELECT $1", "params": [os.getpid()]}]})
    elif mode == "env":
        names = ("PROJECTIOND_PROJECTION", "PROJECTIOND_PARTITION", "NOTIFY_SOCKET")
        send({"sql": [{"statement": "SELECT $1, $2, $3", "params": [os.environ.get(n) for n in names]}]})
    elif mode == "stderr":
        print(f"handling position {position}", file=sys.stderr, flush=True)
        echo(event)
    elif position == at and mode == "error-at":
        send({"error": f"rejected position {position}"})
    elif position == at and mode == "invalid-at":
        sys.stdout.write("this is not json\n")
        sys.stdout.flush()
    elif position == at and mode == "shape-at":
        send({"sql": "SELECT 1"})
    elif position == at and mode == "exit-at":
        print(f"giving up at {position}", file=sys.stderr, flush=True)
        sys.exit(3)
    elif position == at and mode == "hang-at":
        time.sleep(3600)
    elif position == at and mode == "extra-at":
        reply = {"sql": [{"statement": "SELECT $1, $2", "params": [position, event["event_type"]]}]}
        sys.stdout.write(json.dumps(reply) + "\n" + json.dumps({"sql": []}) + "\n")
        sys.stdout.flush()
    else:
        echo(event)

if mode == "stubborn":
    while True:
        time.sleep(3600)
