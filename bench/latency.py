#!/usr/bin/env python3
"""The IoT-Core sink over a long link and against a server that answers in two sends: tail -> json -> batch
(ndjson, 128 KB) -> iotcore_http over HTTPS, as bench.py's tail-batch-https, with one or more binaries (before
and after a change) measured interleaved in the same run.

Scenarios (each run reads the whole input file from its start; lines/s, and the agent's CPU s per 1M lines, peak
RSS, page faults and context switches):
- loopback, loopback-ordered: straight to the emulator (`uplink emulator`), ordering none / per_topic;
- delayed, delayed-ordered: through bench/delay_proxy.py adding --delay-ms (25) each way;
- two-send: to bench/two_send_server.py (headers and body in two sends, no TCP_NODELAY: delayed ACKs).
A binary that does not know `ordering` (before it existed) skips the ordered scenarios.

--isolate runs the harness (emulator, delay proxy, two-send server) on CPU 0 and the agent on the other CPUs. On a
small machine the Python proxy otherwise shares the agent's CPUs, and what it evicts and preempts shows up in the
agent's CPU per line (on 2 vCPUs: 1.3-1.4x behind the proxy unpinned, 1.1x isolated; bench/RESULTS.md).

Usage: bench/latency.py --binary after=PATH [--binary before=PATH] [--binary fixed=PATH,max_concurrency=4]
                        [--lines N] [--runs N] [--scenario NAME ...] [--isolate]
"""
import argparse
import os
import shutil
import subprocess
import sys

from bench import ROOT, HERE, generate, write_config, measure, start_receiver, summary, process_cpu

SCENARIOS = ["loopback", "loopback-ordered", "delayed", "delayed-ordered", "two-send"]


def start_listener(argv):
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = process.stdout.readline().decode()
    if "127.0.0.1:" not in line:
        sys.exit("%s did not start: %r" % (argv[1], line))
    return process, int(line.rsplit(":", 1)[1])


def self_signed(work):
    cert, key = os.path.join(work, "two-send-cert.pem"), os.path.join(work, "two-send-key.pem")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "30", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", action="append", required=True,
                        help="LABEL=PATH[,option=value...]: extra options for the sink, e.g. fixed=PATH,max_concurrency=4")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--delay-ms", type=float, default=25)
    parser.add_argument("--scenario", action="append")
    parser.add_argument("--isolate", action="store_true", help="harness on CPU 0, the agent on the other CPUs")
    args = parser.parse_args()
    agent_prefix = []
    if args.isolate:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            sys.exit("--isolate needs at least 2 CPUs")
        # Children inherit this process's affinity: the harness started below stays on the first CPU.
        os.sched_setaffinity(0, {cpus[0]})
        agent_prefix = ["taskset", "-c", ",".join(str(cpu) for cpu in cpus[1:])]
    binaries = []
    extras = {}
    for item in args.binary:
        label, _, rest = item.partition("=")
        path, *options = rest.split(",")
        binaries.append((label, path))
        extras[label] = "".join("\n    %s: %s" % tuple(option.split("=", 1)) for option in options)
    chosen = args.scenario or SCENARIOS

    work = os.path.join(HERE, "out")
    os.makedirs(work, exist_ok=True)
    data = os.path.join(work, "input-%d.log" % args.lines)
    generate(data, args.lines)

    receiver = start_receiver(binaries[0][1], work)
    proxy, proxy_port = start_listener([sys.executable, os.path.join(HERE, "delay_proxy.py"), "--target-port",
                                        str(receiver["port"]), "--delay-ms", str(args.delay_ms)])
    cert, key = self_signed(work)
    two_send, two_send_port = start_listener([sys.executable, os.path.join(HERE, "two_send_server.py"),
                                              "--cert", cert, "--key", key])
    endpoints = {"loopback": (receiver["port"], receiver["ca"]), "delayed": (proxy_port, receiver["ca"]),
                 "two-send": (two_send_port, cert)}

    def config(label, scenario):
        port, ca = endpoints[scenario.replace("-ordered", "")]
        ordering = "\n    ordering: per_topic" if scenario.endswith("-ordered") else ""
        state = os.path.join(work, "state-latency-%s" % label)
        return state, write_config(work, "latency-%s-%s" % (label, scenario),
                                   "data_dir: %s\nsources:\n  in: { type: file, include: ['%s'], exit_on_eof: true }\n"
                                   "transforms:\n  wrap: { type: json, inputs: [in] }\n"
                                   "  batch: { type: batch, inputs: [wrap], encoding: ndjson }\n"
                                   "sinks:\n  cloud:\n    type: iotcore_http\n    inputs: [batch]\n"
                                   "    endpoint: 'https://127.0.0.1:%d'\n    ca_file: '%s'\n"
                                   "    product_sn: abcdefgh12345678\n    device_sn: device001\n"
                                   "    device_secret: s3cr3tKey0000000%s%s\n"
                                   % (state, data, port, ca, ordering, extras[label]))

    def supported(path, config_path):
        return subprocess.run([path, "validate", config_path], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode == 0

    plan = []
    for scenario in chosen:
        for label, path in binaries:
            state, config_path = config(label, scenario)
            if supported(path, config_path):
                plan.append((scenario, label, path, state, config_path))
    results = {(scenario, label): [] for scenario, label, *_ in plan}

    def run(item):
        scenario, label, path, state, config_path = item
        shutil.rmtree(state, ignore_errors=True)
        # taskset execs the agent in its own process, so wait4 still reports the agent's own usage.
        return measure(agent_prefix + [path, "run", "--log-level", "error", config_path])

    try:
        for item in plan:  # warm-up
            run(item)
        for _ in range(args.runs):
            for item in plan:
                results[(item[0], item[1])].append(run(item))
    finally:
        receiver_cpu = process_cpu(receiver["process"].pid)
        proxy_cpu = process_cpu(proxy.pid)
        for process in (receiver["process"], proxy, two_send):
            process.terminate()
            process.wait()

    print("machine: %s, %d CPUs, load %s; %d lines of 100 bytes; %d runs each, median (min-max); delay %g ms each way%s"
          % (os.uname().machine, os.cpu_count(), "%.1f %.1f %.1f" % os.getloadavg(), args.lines, args.runs,
             args.delay_ms, "; harness on CPU 0, agent on " + agent_prefix[-1] if agent_prefix else ""))
    print("%-18s %-8s %-32s %-26s %-20s %-24s %-24s" % ("scenario", "binary", "lines/s", "CPU s per 1M lines",
                                                       "peak RSS MiB", "page faults", "context switches"))
    for scenario, label, *_ in plan:
        runs = results[(scenario, label)]
        print("%-18s %-8s %-32s %-26s %-20s %-24s %-24s" % (
            scenario, label, summary([args.lines / r["wall"] for r in runs], lambda v: "{:,.0f}".format(v)),
            summary([r["cpu"] * 1_000_000 / args.lines for r in runs], lambda v: "%.2f" % v),
            summary([r["rss_kib"] / 1024 for r in runs], lambda v: "%.1f" % v),
            summary([r["faults"] for r in runs], lambda v: "{:,.0f}".format(v)),
            summary([r["switches"] for r in runs], lambda v: "{:,.0f}".format(v))))
    print("receiver (uplink emulator) CPU %.1f s; delay proxy CPU %.1f s" % (receiver_cpu, proxy_cpu))


if __name__ == "__main__":
    main()
