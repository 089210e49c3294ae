#!/usr/bin/env python3
"""enrich: an Uplink process plugin (a transform) in Python, standard library only.

Adds to every record the `site` it comes from and an `alert` flag set when `field` is above `alert_above`,
so a dashboard can colour readings without knowing thresholds. Speaks Uplink's process protocol version 1:
newline-delimited JSON on stdin/stdout (docs/writing-a-plugin.md); stderr is free for diagnostics.
"""
import json
import sys

PROTOCOL = 1


def send(message):
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def main():
    # 1. Uplink sends `init` with the component's `config:`; we answer `hello` with what we are.
    init = json.loads(sys.stdin.readline())
    config = init.get("config", {})
    if init.get("protocol") != PROTOCOL:
        send({"type": "error", "message": "this plugin speaks protocol %d" % PROTOCOL})
        return 1
    site = config.get("site", "unknown")
    field = config.get("field", "temp")
    threshold = config.get("alert_above")
    if threshold is not None and not isinstance(threshold, (int, float)):
        send({"type": "error", "message": "alert_above must be a number, got %r" % (threshold,)})
        return 1
    send({
        "type": "hello", "protocol": PROTOCOL, "name": "enrich", "version": "1.0", "role": "transform",
        "input": "record", "output": "record",
        "summary": "Adds the site and an alert flag to each record.",
        "options": [
            {"name": "site", "type": "string", "default": "unknown", "description": "added as `site`"},
            {"name": "field", "type": "string", "default": "temp", "description": "the reading to check"},
            {"name": "alert_above", "type": "float", "description": "`alert` is true above this value"},
        ],
    })
    send({"type": "log", "level": "info", "message": "enriching for site %s" % site})

    # 2. Batches until shutdown (or end of input). Each answer is one `ack` carrying the batch's outputs:
    #    Uplink forwards them downstream and releases the inputs only then.
    for line in sys.stdin:
        message = json.loads(line)
        if message["type"] == "shutdown":
            break
        if message["type"] != "batch":
            continue
        out = []
        for record in message["events"]:
            record["site"] = site
            value = record.get(field)
            if threshold is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
                record["alert"] = value > threshold
            out.append(record)
        send({"type": "ack", "id": message["id"], "events": out})
    return 0


if __name__ == "__main__":
    sys.exit(main())
