#!/usr/bin/env python3
"""A slow disk must stall only its own buffer: one agent runs two pipelines,
  - disk:   stdin (an endless stream) -> json -> stdout (/dev/null) behind a disk buffer whose segment fsyncs
            take 50 ms longer (bench/slow_fsync.c through LD_PRELOAD; fsync_interval 10ms, so it syncs all
            the time, as a busy buffer on a slow SD card does),
  - memory: tail of a file of N lines -> json -> file sink, memory buffers only,
and reports the memory pipeline's lines/s (time from start until the file sink wrote all N lines), with the
disk pipeline on the slow disk, and with the disk pipeline absent. Runs are interleaved; medians (min-max).

Usage: bench/slow_disk.py --binary PATH [--baseline PATH] [--lines N] [--runs N] [--delay-ms 50]
"""
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench import generate  # noqa: E402


def config(work, name, data, output, with_disk):
    body = "data_dir: %s/state-%s\nsources:\n  mem_in: { type: file, include: ['%s'] }\n" % (work, name, data)
    if with_disk:
        body += "  disk_in: { type: stdin }\n"
    body += "transforms:\n  mem_json: { type: json, inputs: [mem_in] }\n"
    if with_disk:
        body += "  disk_json: { type: json, inputs: [disk_in] }\n"
    body += "sinks:\n  mem_out: { type: file, inputs: [mem_json], path: '%s' }\n" % output
    if with_disk:
        body += "  disk_out: { type: stdout, inputs: [disk_json], buffer: { type: disk, fsync_interval: 10ms } }\n"
    path = os.path.join(work, "slow-disk-%s.yaml" % name)
    with open(path, "w") as out:
        out.write(body)
    return path


def run_once(binary, work, name, data, lines, expected_bytes, with_disk, shim, delay_ms, timeout):
    """Seconds until the memory pipeline's file sink holds `expected_bytes` (or all `lines` lines when unknown),
    and the bytes it then held."""
    shutil.rmtree(os.path.join(work, "state-" + name), ignore_errors=True)
    output = os.path.join(work, "slow-disk-%s.out" % name)
    if os.path.exists(output):
        os.unlink(output)
    path = config(work, name, data, output, with_disk)
    environment = dict(os.environ, LD_PRELOAD=shim, UPLINK_SLOW_FSYNC="/disk_out/", UPLINK_SLOW_FSYNC_MS=str(delay_ms))
    feeder = None
    stdin = subprocess.DEVNULL
    if with_disk:
        # An endless stream of 100-byte lines; ends with the agent (SIGPIPE).
        feeder = subprocess.Popen(["yes", "x" * 99], stdout=subprocess.PIPE)
        stdin = feeder.stdout
    start = time.monotonic()
    agent = subprocess.Popen([binary, "run", "--log-level", "error", path], stdin=stdin, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, env=environment)
    if feeder:
        feeder.stdout.close()
    done = None
    while time.monotonic() - start < timeout:
        size = os.path.getsize(output) if os.path.exists(output) else 0
        if expected_bytes is not None and size >= expected_bytes:
            done = time.monotonic() - start
            break
        if expected_bytes is None and size > 0:
            with open(output, "rb") as handle:
                if handle.read().count(b"\n") >= lines:
                    done = time.monotonic() - start
                    size = os.path.getsize(output)
                    break
        if agent.poll() is not None:
            sys.exit("agent exited early: %s" % agent.stderr.read().decode(errors="replace"))
        time.sleep(0.01)
    agent.send_signal(signal.SIGTERM)
    try:
        agent.wait(timeout=30)
    except subprocess.TimeoutExpired:
        agent.kill()
        agent.wait()
    if feeder:
        feeder.kill()
        feeder.wait()
    if done is None:
        sys.exit("%s: the memory pipeline did not finish within %d s" % (name, timeout))
    return done, size


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--baseline", help="another uplink binary (e.g. main's), measured in the same rounds")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--delay-ms", type=int, default=50)
    parser.add_argument("--timeout", type=int, default=300)
    args = parser.parse_args()
    work = os.path.join(HERE, "out")
    os.makedirs(work, exist_ok=True)
    data = os.path.join(work, "input-%d.log" % args.lines)
    generate(data, args.lines)
    shim = os.path.join(work, "libslow_fsync.so")
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", shim, os.path.join(HERE, "slow_fsync.c"), "-ldl"], check=True)

    binaries = [("after", args.binary)] + ([("before", args.baseline)] if args.baseline else [])
    cases = [(label, binary, with_disk) for label, binary in binaries for with_disk in (False, True)]
    # The first run of each binary counts the output's lines; later runs wait for that many bytes.
    expected = {}
    for label, binary in binaries:
        _, expected[label] = run_once(binary, work, label, data, args.lines, None, False, shim, args.delay_ms,
                                      args.timeout)
    results = {case: [] for case in cases}
    for _ in range(args.runs):
        for case in cases:
            label, binary, with_disk = case
            name = "%s-%s" % (label, "disk" if with_disk else "alone")
            seconds, _ = run_once(binary, work, name, data, args.lines, expected[label], with_disk, shim,
                                  args.delay_ms, args.timeout)
            results[case].append(args.lines / seconds)

    print("machine: %s, %d CPUs; memory pipeline of %d lines; fsync +%d ms on the disk pipeline's buffer; %d runs,"
          " median (min-max)" % (os.uname().machine, os.cpu_count(), args.lines, args.delay_ms, args.runs))
    for label, binary in binaries:
        medians = {}
        for with_disk in (False, True):
            values = results[(label, binary, with_disk)]
            medians[with_disk] = statistics.median(values)
            print("%-7s memory pipeline %-22s %s lines/s (%s-%s)" % (
                label, "beside the slow disk:" if with_disk else "alone:", "{:,.0f}".format(medians[with_disk]),
                "{:,.0f}".format(min(values)), "{:,.0f}".format(max(values))))
        print("%-7s ratio beside/alone: %.2f" % (label, medians[True] / medians[False]))

if __name__ == "__main__":
    main()
