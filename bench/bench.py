#!/usr/bin/env python3
"""Uplink benchmarks: generates the input, runs each scenario several times (interleaved, warm page cache)
and prints lines/s, CPU seconds per million lines and peak RSS as medians with min-max.

Usage: bench/bench.py [--binary PATH] [--lines N] [--runs N] [--scenario NAME ...]
"""
import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def generate(path, lines):
    """Lines of exactly 100 bytes including the newline, as in the Fluent Bit comparison."""
    if os.path.exists(path) and os.path.getsize(path) == lines * 100:
        return
    with open(path, "wb") as out:
        chunk = []
        for index in range(lines):
            prefix = b"%010d " % index
            chunk.append(prefix + b"x" * (99 - len(prefix)) + b"\n")
            if len(chunk) == 10000:
                out.write(b"".join(chunk))
                chunk = []
        out.write(b"".join(chunk))


def generate_csv(path, lines):
    """Sensor readings as a board prints them: time (ms), temperature, humidity, status."""
    if os.path.exists(path):
        return
    with open(path, "wb") as out:
        chunk = []
        for index in range(lines):
            chunk.append(b"%d,%.1f,%d,%s\n" % (1700000000000 + index, 20 + (index % 150) / 10, 40 + index % 30,
                                              b"ok" if index % 7 else b"warn"))
            if len(chunk) == 10000:
                out.write(b"".join(chunk))
                chunk = []
        out.write(b"".join(chunk))


def generate_json(path, lines):
    """Sensor readings as JSON objects of six fields, for the json transform's json mode."""
    if os.path.exists(path):
        return
    with open(path, "wb") as out:
        chunk = []
        for index in range(lines):
            chunk.append(b'{"time":%d,"device":"dev-%03d","temperature":%.1f,"humidity":%d,"ok":%s,"note":null}\n'
                         % (1700000000000 + index, index % 100, 20 + (index % 150) / 10, 40 + index % 30,
                            b"true" if index % 7 else b"false"))
            if len(chunk) == 10000:
                out.write(b"".join(chunk))
                chunk = []
        out.write(b"".join(chunk))


def write_config(directory, name, body):
    path = os.path.join(directory, name + ".yaml")
    with open(path, "w") as out:
        out.write(body)
    return path


def measure(argv, stdin_path=None):
    # os.wait4 gives this child's own rusage (CPU and max RSS), not the accumulated children's.
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    stdout = subprocess.PIPE if "bench-channel" in argv else subprocess.DEVNULL
    start = time.monotonic()
    process = subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)
    out = process.stdout.read() if stdout == subprocess.PIPE else b""
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - start
    if stdin_path:
        stdin.close()
    if status != 0:
        sys.exit("command failed (%s): %s\n%s" % (status, " ".join(argv), err.decode(errors="replace")))
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_kib": usage.ru_maxrss, "out": out.decode(),
            "faults": usage.ru_minflt + usage.ru_majflt, "switches": usage.ru_nvcsw + usage.ru_nivcsw}


def start_receiver(binary, work):
    ca = os.path.join(work, "receiver-ca.pem")
    devices = os.path.join(ROOT, "examples", "emulator-devices.yaml")
    process = subprocess.Popen([binary, "emulator", "--devices", devices, "--port", "0", "--ca-out", ca,
                                "--log-level", "error"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = process.stdout.readline().decode()
    port = int(line.split("127.0.0.1:")[1].split()[0])
    return {"process": process, "port": port, "ca": ca}


def process_cpu(pid):
    with open("/proc/%d/stat" % pid) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def measure_idle(binary, work, data):
    """An agent tailing a file nobody writes to, for 10 s: CPU used and memory (RSS, RssAnon)."""
    shutil.rmtree(os.path.join(work, "state-idle"), ignore_errors=True)
    config = write_config(work, "idle", "data_dir: %s/state-idle\nsources:\n  in: { type: file, include: ['%s'],"
                          " read_from: end }\nsinks:\n  out: { type: stdout, inputs: [in] }\n" % (work, data))
    process = subprocess.Popen([binary, "run", "--log-level", "error", config], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    time.sleep(2)
    before = process_cpu(process.pid)
    time.sleep(10)
    cpu = process_cpu(process.pid) - before
    status = {}
    with open("/proc/%d/status" % process.pid) as lines:
        for line in lines:
            key, _, value = line.partition(":")
            status[key] = value.strip()
    process.terminate()
    process.wait()
    return {"cpu": cpu, "rss": status.get("VmRSS"), "anon": status.get("RssAnon"), "hwm": status.get("VmHWM")}


def summary(values, fmt):
    median = statistics.median(values)
    return "%s (%s-%s)" % (fmt(median), fmt(min(values)), fmt(max(values)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "uplink"))
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scenario", action="append")
    parser.add_argument("--baseline", help="another uplink binary (e.g. main's) to run the same scenarios with, "
                        "interleaved, for a before/after comparison in one run")
    args = parser.parse_args()
    if not os.path.exists(args.binary):
        sys.exit("build first: swift build -c release (or pass --binary)")

    work = os.path.join(ROOT, "bench", "out")
    os.makedirs(work, exist_ok=True)
    data = os.path.join(work, "input-%d.log" % args.lines)
    generate(data, args.lines)
    csv_data = os.path.join(work, "input-csv-%d.log" % args.lines)
    generate_csv(csv_data, args.lines)
    json_data = os.path.join(work, "input-json-%d.log" % args.lines)
    generate_json(json_data, args.lines)

    scenarios = {
        "stdin-stdout": {
            "argv": [args.binary, "run", "--log-level", "error",
                     write_config(work, "stdin-stdout", "data_dir: %s/state\nsources:\n  in: { type: stdin }\n"
                                  "sinks:\n  out: { type: stdout, inputs: [in] }\n" % work)],
            "stdin": data, "lines": args.lines,
        },
        "stdin-json-stdout": {
            "argv": [args.binary, "run", "--log-level", "error",
                     write_config(work, "stdin-json-stdout", "data_dir: %s/state\nsources:\n  in: { type: stdin }\n"
                                  "transforms:\n  wrap: { type: json, inputs: [in] }\n"
                                  "sinks:\n  out: { type: stdout, inputs: [wrap] }\n" % work)],
            "stdin": data, "lines": args.lines,
        },
        # records/s through json's json mode (objects of six fields parsed into records).
        "json-mode": {
            "argv": [args.binary, "run", "--log-level", "error",
                     write_config(work, "json-mode", "data_dir: %s/state\nsources:\n  in: { type: stdin }\n"
                                  "transforms:\n  wrap: { type: json, inputs: [in], mode: json }\n"
                                  "sinks:\n  out: { type: stdout, inputs: [wrap] }\n" % work)],
            "stdin": json_data, "lines": args.lines,
        },
        # records/s through json (csv, typed columns) => thing_model (property posts) => batch (<= 128 KB).
        "csv-thingmodel-batch": {
            "argv": [args.binary, "run", "--log-level", "error",
                     write_config(work, "csv-thingmodel-batch",
                                  "data_dir: %s/state\nsources:\n  in: { type: stdin }\n"
                                  "transforms:\n"
                                  "  wrap: { type: json, inputs: [in], mode: csv,"
                                  " columns: [time:int, temperature:float, humidity:int, status] }\n"
                                  "  model: { type: thing_model, inputs: [wrap], product_sn: abcdefgh12345678,"
                                  " device_sn: device001, time_field: time }\n"
                                  "  batch: { type: batch, inputs: [model] }\n"
                                  "sinks:\n  out: { type: stdout, inputs: [batch] }\n" % work)],
            "stdin": csv_data, "lines": args.lines,
        },
        # json (csv) alone, and json -> filter -> remap, on the same sensor lines: the edge stages' own cost per
        # record is the difference (a trivial filter that passes everything, a remap that computes one field).
        "csv-json": {
            "argv": [args.binary, "run", "--log-level", "error",
                     write_config(work, "csv-json",
                                  "data_dir: %s/state\nsources:\n  in: { type: stdin }\n"
                                  "transforms:\n"
                                  "  wrap: { type: json, inputs: [in], mode: csv,"
                                  " columns: [time:int, temperature:float, humidity:int, status] }\n"
                                  "sinks:\n  out: { type: stdout, inputs: [wrap] }\n" % work)],
            "stdin": csv_data, "lines": args.lines,
        },
        "csv-json-filter-remap": {
            "argv": [args.binary, "run", "--log-level", "error",
                     write_config(work, "csv-json-filter-remap",
                                  "data_dir: %s/state\nsources:\n  in: { type: stdin }\n"
                                  "transforms:\n"
                                  "  wrap: { type: json, inputs: [in], mode: csv,"
                                  " columns: [time:int, temperature:float, humidity:int, status] }\n"
                                  "  plausible: { type: filter, inputs: [wrap], condition: '.temperature > -40 && .temperature < 125' }\n"
                                  "  units: { type: remap, inputs: [plausible], set: { temp_f: 'round(.temperature * 9 / 5 + 32, 1)' } }\n"
                                  "sinks:\n  out: { type: stdout, inputs: [units] }\n" % work)],
            "stdin": csv_data, "lines": args.lines,
        },
        # Each of the two stages alone after json: what each adds (a stage's own work and its hop: a task and a
        # channel in front of it).
        "csv-json-filter": {
            "argv": [args.binary, "run", "--log-level", "error",
                     write_config(work, "csv-json-filter",
                                  "data_dir: %s/state\nsources:\n  in: { type: stdin }\n"
                                  "transforms:\n"
                                  "  wrap: { type: json, inputs: [in], mode: csv,"
                                  " columns: [time:int, temperature:float, humidity:int, status] }\n"
                                  "  plausible: { type: filter, inputs: [wrap], condition: '.temperature > -40 && .temperature < 125' }\n"
                                  "sinks:\n  out: { type: stdout, inputs: [plausible] }\n" % work)],
            "stdin": csv_data, "lines": args.lines,
        },
        # json -> aggregate (1 min windows per sensor status, mean/min/max): the windowed stage's cost per record
        # beside json alone; it sends one record per key and window, so its sink does almost nothing.
        "csv-json-aggregate": {
            "argv": [args.binary, "run", "--log-level", "error",
                     write_config(work, "csv-json-aggregate",
                                  "data_dir: %s/state\nsources:\n  in: { type: stdin }\n"
                                  "transforms:\n"
                                  "  wrap: { type: json, inputs: [in], mode: csv,"
                                  " columns: [time:int, temperature:float, humidity:int, status] }\n"
                                  "  minute: { type: aggregate, inputs: [wrap], window: 1m, group_by: [status],"
                                  " fields: { temperature: [mean, min, max], humidity: mean } }\n"
                                  "sinks:\n  out: { type: stdout, inputs: [minute] }\n" % work)],
            "stdin": csv_data, "lines": args.lines,
        },
        "csv-json-remap": {
            "argv": [args.binary, "run", "--log-level", "error",
                     write_config(work, "csv-json-remap",
                                  "data_dir: %s/state\nsources:\n  in: { type: stdin }\n"
                                  "transforms:\n"
                                  "  wrap: { type: json, inputs: [in], mode: csv,"
                                  " columns: [time:int, temperature:float, humidity:int, status] }\n"
                                  "  units: { type: remap, inputs: [wrap], set: { temp_f: 'round(.temperature * 9 / 5 + 32, 1)' } }\n"
                                  "sinks:\n  out: { type: stdout, inputs: [units] }\n" % work)],
            "stdin": csv_data, "lines": args.lines,
        },
        # Every line is garbage to json's json mode and dead-lettered (a sensor sending noise, a log format that
        # changed): the cost of rejects, one fsync per chunk. Use --lines 100000 against a build from before
        # 2026-12-06, which fsynced each line (about 15 s per 100k lines).
        "dead-letter-storm": {
            "argv": [args.binary, "run", "--log-level", "error",
                     write_config(work, "dead-letter-storm", "data_dir: %s/state-storm\nsources:\n  in: { type: stdin }\n"
                                  "transforms:\n  parse: { type: json, inputs: [in], mode: json, on_error: dead_letter }\n"
                                  "sinks:\n  out: { type: stdout, inputs: [parse] }\n" % work)],
            "stdin": data, "lines": args.lines,
            "setup": lambda: shutil.rmtree(os.path.join(work, "state-storm"), ignore_errors=True),
        },
        "channel": {
            "argv": [args.binary, "bench-channel", "--events", str(args.lines)],
            "stdin": None, "lines": args.lines,
        },
        # Tails the whole file from its beginning into stdout on /dev/null (a blackhole), exiting at end of
        # file; checkpoints are written as usual. The state directory is removed before each run so every run
        # reads the file from the start.
        "file-tail": {
            "argv": [args.binary, "run", "--log-level", "error",
                     write_config(work, "file-tail", "data_dir: %s/state-tail\nsources:\n  in: { type: file, "
                                  "include: ['%s'], exit_on_eof: true }\n"
                                  "sinks:\n  out: { type: stdout, inputs: [in] }\n" % (work, data))],
            "stdin": None, "lines": args.lines,
            "setup": lambda: shutil.rmtree(os.path.join(work, "state-tail"), ignore_errors=True),
        },
    }
    # tail -> json -> batch (ndjson, 128 KB) -> iotcore_http over HTTPS to a loopback receiver: the agent's own
    # emulator in a separate process (its CPU is reported, to show it is not the bottleneck).
    receiver = None
    if args.scenario is None or any(name.startswith("tail-batch-https") for name in args.scenario):
        receiver = start_receiver(args.binary, work)
        scenarios["tail-batch-https"] = {
            "argv": [args.binary, "run", "--log-level", "error",
                     write_config(work, "tail-batch-https",
                                  "data_dir: %s/state-https\nsources:\n  in: { type: file, include: ['%s'], exit_on_eof: true }\n"
                                  "transforms:\n  wrap: { type: json, inputs: [in] }\n"
                                  "  batch: { type: batch, inputs: [wrap], encoding: ndjson }\n"
                                  "sinks:\n  cloud: { type: iotcore_http, inputs: [batch], endpoint: 'https://127.0.0.1:%d',"
                                  " ca_file: '%s', product_sn: abcdefgh12345678, device_sn: device001,"
                                  " device_secret: s3cr3tKey0000000 }\n" % (work, data, receiver["port"], receiver["ca"]))],
            "stdin": None, "lines": args.lines,
            "setup": lambda: shutil.rmtree(os.path.join(work, "state-https"), ignore_errors=True),
        }
        # The same with a disk buffer in front of the sink (fsync_interval 500 ms, every fsync checked), so the
        # buffer's cost reads side by side with the memory path of the same run.
        scenarios["tail-batch-https-disk"] = {
            "argv": [args.binary, "run", "--log-level", "error",
                     write_config(work, "tail-batch-https-disk",
                                  "data_dir: %s/state-https-disk\nsources:\n  in: { type: file, include: ['%s'], exit_on_eof: true }\n"
                                  "transforms:\n  wrap: { type: json, inputs: [in] }\n"
                                  "  batch: { type: batch, inputs: [wrap], encoding: ndjson }\n"
                                  "sinks:\n  cloud: { type: iotcore_http, inputs: [batch], endpoint: 'https://127.0.0.1:%d',"
                                  " ca_file: '%s', product_sn: abcdefgh12345678, device_sn: device001,"
                                  " device_secret: s3cr3tKey0000000, buffer: { type: disk } }\n" % (work, data, receiver["port"], receiver["ca"]))],
            "stdin": None, "lines": args.lines,
            "setup": lambda: shutil.rmtree(os.path.join(work, "state-https-disk"), ignore_errors=True),
        }
        # The same as tail-batch-https with a trivial filter (every line passes) between json and batch.
        scenarios["tail-batch-https-filter"] = {
            "argv": [args.binary, "run", "--log-level", "error",
                     write_config(work, "tail-batch-https-filter",
                                  "data_dir: %s/state-https-filter\nsources:\n  in: { type: file, include: ['%s'], exit_on_eof: true }\n"
                                  "transforms:\n  wrap: { type: json, inputs: [in] }\n"
                                  "  keep: { type: filter, inputs: [wrap], condition: '.message != \"\"' }\n"
                                  "  batch: { type: batch, inputs: [keep], encoding: ndjson }\n"
                                  "sinks:\n  cloud: { type: iotcore_http, inputs: [batch], endpoint: 'https://127.0.0.1:%d',"
                                  " ca_file: '%s', product_sn: abcdefgh12345678, device_sn: device001,"
                                  " device_secret: s3cr3tKey0000000 }\n" % (work, data, receiver["port"], receiver["ca"]))],
            "stdin": None, "lines": args.lines,
            "setup": lambda: shutil.rmtree(os.path.join(work, "state-https-filter"), ignore_errors=True),
        }
    # "idle" is measured separately below, after the timed scenarios.
    chosen = [name for name in (args.scenario or list(scenarios)) if name != "idle"]
    unknown = [name for name in chosen if name not in scenarios]
    if unknown:
        sys.exit("unknown scenario: %s (known: %s, idle)" % (", ".join(unknown), ", ".join(scenarios)))
    if args.baseline:
        # The same scenarios with the other binary, measured in the same interleaved rounds.
        for name in list(chosen):
            scenario = dict(scenarios[name])
            scenario["argv"] = [args.baseline if arg == args.binary else arg for arg in scenario["argv"]]
            scenarios[name + " (baseline)"] = scenario
            chosen.append(name + " (baseline)")
    results = {name: [] for name in chosen}
    # Warm-up run of each (page cache, dynamic loader), then interleaved measured runs.
    def run(name):
        scenario = scenarios[name]
        if "setup" in scenario:
            scenario["setup"]()
        return measure(scenario["argv"], scenario["stdin"])

    for name in chosen:
        run(name)
    for _ in range(args.runs):
        for name in chosen:
            results[name].append(run(name))

    receiver_cpu = None
    if receiver:
        receiver_cpu = process_cpu(receiver["process"].pid)
        receiver["process"].terminate()
        receiver["process"].wait()
    idle = measure_idle(args.binary, work, data) if args.scenario is None or "idle" in args.scenario else None

    print("machine: %s, %d CPUs; %d lines of 100 bytes; %d runs each, median (min-max)"
          % (os.uname().machine, os.cpu_count(), args.lines, args.runs))
    print("%-20s %-32s %-28s %-24s" % ("scenario", "lines/s", "CPU s per 1M lines", "peak RSS MiB"))
    for name in chosen:
        runs = results[name]
        lines = scenarios[name]["lines"]
        rates = [lines / r["wall"] for r in runs]
        cpu = [r["cpu"] * 1_000_000 / lines for r in runs]
        rss = [r["rss_kib"] / 1024 for r in runs]
        print("%-20s %-32s %-28s %-24s" % (
            name, summary(rates, lambda v: "{:,.0f}".format(v)), summary(cpu, lambda v: "%.2f" % v),
            summary(rss, lambda v: "%.1f" % v)))

    if receiver_cpu is not None:
        total = sum(r["wall"] for r in results.get("tail-batch-https", [])) or 1
        print("receiver (uplink emulator) CPU: %.1f s over all tail-batch-https runs (%.0f%% of one core while they ran)"
              % (receiver_cpu, 100 * receiver_cpu / total))
    if idle:
        print("idle tail, 10 s: CPU %.3f s; VmRSS %s, RssAnon %s, VmHWM %s" % (idle["cpu"], idle["rss"], idle["anon"], idle["hwm"]))


if __name__ == "__main__":
    main()
