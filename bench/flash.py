#!/usr/bin/env python3
"""Flash wear: what the agent writes to storage with a disk buffer in front of the sink, for two binaries in the
same run (before and after), interleaved.

Pipeline: file tail -> json -> batch -> iotcore_http (disk buffer, defaults) to a loopback emulator. Two phases:
  trickle  an application writes 10 lines/s for --seconds; reported per second
  full     --lines lines written up front, delivered as fast as it goes; reported per 1,000 records
Counted for the agent process only: bytes it caused to be written to storage (/proc/PID/io write_bytes, read
just before it stops), and fsync/fdatasync and rename calls (strace -c -f, with --seccomp-bpf so untraced
calls cost nothing). Medians of --runs runs.

Usage: bench/flash.py --before BINARY --after BINARY [--seconds 30] [--lines 100000] [--runs 3]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYNCS = ("fsync", "fdatasync")
RENAMES = ("rename", "renameat", "renameat2")


def line(number):
    return "%s app[42]: reading %d temperature=21.5 humidity=40 status=ok\n" % (time.strftime("%b %d %H:%M:%S"), number)


def start_emulator(binary, work):
    ca = os.path.join(work, "ca.pem")
    accepted = os.path.join(work, "accepted.jsonl")
    devices = os.path.join(ROOT, "examples", "emulator-devices.yaml")
    process = subprocess.Popen([binary, "emulator", "--devices", devices, "--port", "0", "--ca-out", ca,
                                "--accepted-log", accepted, "--log-level", "error"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    port = int(process.stdout.readline().decode().split("127.0.0.1:")[1].split()[0])
    return process, port, ca, accepted


def accepted_records(path):
    """Records the emulator accepted: each accepted request logs one line; bodies are NDJSON batches."""
    import base64
    import json
    count = 0
    try:
        with open(path) as log:
            for entry in log:
                if not entry.endswith("\n"):
                    break  # being written
                body = base64.b64decode(json.loads(entry).get("body_base64", ""))
                count += body.count(b"\n") + (0 if body.endswith(b"\n") or not body else 1)
    except FileNotFoundError:
        pass
    return count


def config(work, name, log, port, ca):
    path = os.path.join(work, name + ".yaml")
    with open(path, "w") as out:
        out.write("data_dir: %s/state-%s\n" % (work, name)
                  + "sources:\n  app: { type: file, include: ['%s'] }\n" % log
                  + "transforms:\n  wrap: { type: json, inputs: [app] }\n"
                  + "  batches: { type: batch, inputs: [wrap], encoding: ndjson }\n"
                  + "sinks:\n  cloud:\n    type: iotcore_http\n    inputs: [batches]\n"
                  + "    endpoint: https://127.0.0.1:%d\n    ca_file: %s\n" % (port, ca)
                  + "    product_sn: abcdefgh12345678\n    device_sn: device001\n    device_secret: s3cr3tKey0000000\n"
                  + "    buffer: { type: disk }\n")
    return path


def agent_pid(strace, binary):
    """The traced agent: the child of strace that runs `binary` (strace may fork a helper first)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/task/%d/children" % (strace.pid, strace.pid)) as children:
                for pid in children.read().split():
                    if os.path.realpath("/proc/%s/exe" % pid) == os.path.realpath(binary):
                        return int(pid)
        except (FileNotFoundError, ProcessLookupError):
            pass
        time.sleep(0.01)
    sys.exit("the agent did not start under strace")


def write_bytes(pid):
    with open("/proc/%d/io" % pid) as io:
        for row in io:
            if row.startswith("write_bytes:"):
                return int(row.split()[1])
    return 0


def syscalls(summary_path):
    counts = {}
    with open(summary_path) as summary:
        for row in summary:
            fields = row.split()
            if len(fields) >= 5 and fields[-1] in SYNCS + RENAMES:
                calls = fields[3] if len(fields) >= 6 else fields[3]
                counts[fields[-1]] = int(calls)
    return sum(counts.get(name, 0) for name in SYNCS), sum(counts.get(name, 0) for name in RENAMES)


def run(binary, emulator_binary, phase, args):
    work = tempfile.mkdtemp(prefix="uplink-flash-")
    try:
        emulator, port, ca, accepted = start_emulator(emulator_binary, work)
        log = os.path.join(work, "app.log")
        total = args.lines if phase == "full" else int(args.seconds * 10)
        with open(log, "w") as out:
            if phase == "full":
                out.writelines(line(number) for number in range(total))
        summary = os.path.join(work, "strace.txt")
        strace = subprocess.Popen(
            ["strace", "-f", "-c", "--seccomp-bpf", "-e", "trace=" + ",".join(SYNCS + RENAMES), "-o", summary,
             binary, "run", "--log-level", "error", config(work, "flash", log, port, ca)],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "agent.log"), "w"))
        pid = agent_pid(strace, binary)
        start = time.monotonic()
        if phase == "trickle":
            with open(log, "a") as out:
                for number in range(total):
                    out.write(line(number))
                    out.flush()
                    time.sleep(max(0, start + (number + 1) / 10 - time.monotonic()))
        # Bounded: every record delivered, or 120 s.
        deadline = time.monotonic() + 120
        while accepted_records(accepted) < total and time.monotonic() < deadline:
            time.sleep(0.2)
        elapsed = time.monotonic() - start
        if strace.poll() is not None:
            sys.exit("%s stopped early:\n%s" % (binary, open(os.path.join(work, "agent.log")).read()))
        written = write_bytes(pid)
        # The agent stops (strace then writes its summary and exits).
        os.kill(pid, 15)
        strace.wait()
        emulator.terminate()
        emulator.wait()
        syncs, renames = syscalls(summary)
        delivered = accepted_records(accepted)
        if delivered < total:
            sys.exit("%s: only %d of %d records delivered" % (binary, delivered, total))
        return {"seconds": elapsed, "bytes": written, "syncs": syncs, "renames": renames, "records": total}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True)
    parser.add_argument("--after", required=True)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("strace") is None:
        sys.exit("strace is needed: apt-get install strace")
    binaries = {"before": args.before, "after": args.after}
    results = {(name, phase): [] for name in binaries for phase in ("trickle", "full")}
    for _ in range(args.runs):
        for phase in ("trickle", "full"):
            for name, binary in binaries.items():
                # One emulator build for both, so only the agent differs.
                results[(name, phase)].append(run(binary, args.after, phase, args))

    def median(name, phase, key, per):
        return statistics.median(r[key] / per(r) for r in results[(name, phase)])

    print("flash wear, disk buffer in front of the sink, defaults; medians of %d runs" % args.runs)
    print("%-8s %-34s %-38s" % ("", "10 lines/s (per second)", "full speed (per 1,000 records)"))
    print("%-8s %-11s %-10s %-11s  %-12s %-12s %-11s" % ("binary", "KiB written", "fsyncs", "renames",
                                                         "KiB written", "fsyncs", "renames"))
    for name in binaries:
        per_second = lambda r: r["seconds"]
        per_thousand = lambda r: r["records"] / 1000
        print("%-8s %-11.1f %-10.2f %-11.2f  %-12.2f %-12.3f %-11.3f" % (
            name,
            median(name, "trickle", "bytes", per_second) / 1024, median(name, "trickle", "syncs", per_second),
            median(name, "trickle", "renames", per_second),
            median(name, "full", "bytes", per_thousand) / 1024, median(name, "full", "syncs", per_thousand),
            median(name, "full", "renames", per_thousand)))


if __name__ == "__main__":
    main()
