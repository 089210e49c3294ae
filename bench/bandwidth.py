#!/usr/bin/env python3
"""Bytes and requests shipped to IoT-Core for one day of a 1 Hz sensor (bench/edge_trace.py, seeded): raw
readings vs `deadband` vs `aggregate` 1m vs both, through the real agent and its embedded emulator (counted from
the emulator's accepted log: one accepted message per request, as no `batch` stage merges them here).

Time: `deadband`'s max_interval and `aggregate`'s windows follow the agent's clock, not the records' timestamps.
So the day is fed as fast as the agent takes it for raw and deadband (deadband runs without a heartbeat: its
band decisions do not depend on time), and for the aggregate variants the clock is scaled instead: a 1 s window
stands for 1 min, and 60 trace lines are written at each whole second, so each window holds exactly one minute
of the trace. That runs in real time at 60x, so it covers the first --aggregate-hours of the day and the
property figures are scaled to 24 h (events, identical in every variant, come from the full-day run).

Usage: bench/bandwidth.py [--binary .build/release/uplink] [--aggregate-hours 1]
"""
import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def config(work, name, readings):
    """The example pipeline serial-edge-iotcore.yaml with stdin for the serial port, no batch, and `readings`
    (the stages between route's readings output and the properties' thing_model)."""
    previous = "split.readings"
    stages = ""
    for index, (kind, options) in enumerate(readings):
        stages += "  stage%d: { type: %s, inputs: [%s], %s }\n" % (index, kind, previous, options)
        previous = "stage%d" % index
    body = (
        "data_dir: %s/state-%s\nshutdown_timeout: 30m\n"
        "sources:\n  sensor: { type: stdin }\n"
        "transforms:\n"
        "  readings: { type: json, inputs: [sensor], mode: csv, columns: [time:int, temperature:float, humidity:int, status:string] }\n"
        "  plausible: { type: filter, inputs: [readings], condition: '.temperature > -40 && .temperature < 125 && .humidity >= 0 && .humidity <= 100' }\n"
        "  split: { type: route, inputs: [plausible], routes: { alarms: '.status != \"ok\"', readings: '.status == \"ok\"' } }\n"
        "  alarms: { type: thing_model, inputs: [split.alarms], kind: event, identifier_field: status, outputs: { temp: temperature, hum: humidity }, time_field: time }\n"
        "%s"
        "  properties: { type: thing_model, inputs: [%s], kind: property, %s }\n"
        "sinks:\n  cloud: { type: iotcore_http, inputs: [alarms, properties], endpoint: embedded,"
        " product_sn: abcdefgh12345678, device_sn: device001, device_secret: s3cr3tKey0000000 }\n"
    ) % (work, name, stages, previous,
         "properties: { temp: temperature_mean, temp_min: temperature_min, temp_max: temperature_max, hum: humidity_mean }"
         if any(kind == "aggregate" for kind, _ in readings) else "properties: { temp: temperature, hum: humidity }, time_field: time")
    path = os.path.join(work, name + ".yaml")
    with open(path, "w") as handle:
        handle.write(body)
    shutil.rmtree(os.path.join(work, "state-" + name), ignore_errors=True)
    return path


def run(binary, path, lines, per_second=None):
    agent = subprocess.Popen([binary, "run", "--log-level", "error", path], stdin=subprocess.PIPE)
    if per_second is None:
        agent.stdin.write("".join(line + "\n" for line in lines).encode())
    else:
        # 60 lines just after each whole second, so each 1 s window holds one minute of the trace.
        for start in range(0, len(lines), per_second):
            now = time.time()
            time.sleep(1.05 - (now % 1.0) if now % 1.0 > 0.05 else 0.05 - now % 1.0)
            agent.stdin.write("".join(line + "\n" for line in lines[start:start + per_second]).encode())
            agent.stdin.flush()
    agent.stdin.close()
    if agent.wait(timeout=3600) != 0:
        sys.exit("agent failed on %s" % path)


def count(work, name):
    totals = {"event": [0, 0], "property": [0, 0]}
    with open(os.path.join(work, "state-" + name, "cloud", "embedded-accepted.jsonl")) as handle:
        for line in handle:
            message = json.loads(line)
            kind = "event" if message["topic"].endswith("/event/post") else "property"
            totals[kind][0] += 1
            totals[kind][1] += len(base64.b64decode(message["body_base64"]))
    return totals


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=os.path.join(HERE, "..", ".build", "release", "uplink"))
    parser.add_argument("--aggregate-hours", type=int, default=1)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="uplink-bandwidth-")
    lines = subprocess.run([sys.executable, os.path.join(HERE, "edge_trace.py")], check=True,
                           capture_output=True, text=True).stdout.splitlines()
    deadband = ("deadband", "fields: { temperature: 0.2, humidity: 1 }")
    aggregate = ("aggregate", "window: 1s, fields: { temperature: [mean, min, max], humidity: mean }")
    rows = {}
    for name, stages in (("raw", []), ("deadband", [deadband])):
        run(args.binary, config(work, name, stages), lines)
        rows[name] = count(work, name)
    hours = args.aggregate_hours
    for name, stages in (("aggregate 1m", [aggregate]), ("deadband + aggregate 1m", [deadband, aggregate])):
        sample = [line for line in lines[:hours * 3600] if ",ok" in line]
        key = name.replace(" ", "-").replace("+", "")
        run(args.binary, config(work, key, stages), sample, per_second=60)
        measured = count(work, key)
        rows[name] = {"event": rows["raw"]["event"],
                      "property": [round(value * 24 / hours) for value in measured["property"]]}
    raw_bytes = sum(value[1] for value in rows["raw"].values())
    print("| pipeline | requests/day | bytes/day | property posts | event posts | bytes vs raw |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, totals in rows.items():
        requests = totals["event"][0] + totals["property"][0]
        body = totals["event"][1] + totals["property"][1]
        print("| %s | %d | %d | %d | %d | %.4f (1/%.0f) |" % (
            name, requests, body, totals["property"][0], totals["event"][0], body / raw_bytes, raw_bytes / body))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
