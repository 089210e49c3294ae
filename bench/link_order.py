#!/usr/bin/env python3
"""Regenerates packaging/link-order.txt, the symbol ordering file release builds are linked with.

Why: a page fault maps 64 KiB of the executable around it (fault-around), and the code one pipeline runs is a
few hundred functions scattered over 18 MiB of code, so the steady state kept ~6 MiB of the executable resident
for ~0.3 MiB of code. The same holds for data: the Swift runtime writes metadata caches spread over every
module's .bss and .data, and each written page becomes the process's own memory. lld's
--symbol-ordering-file places the listed sections first, in order (bench/RESULTS.md has the measurements):
  1. functions the steady state runs (what runs after start-up in the scenarios below), hottest first;
  2. the other functions start-up runs, so that the pages the release after start-up hands back are few;
  3. data symbols the runtime writes, packed into few pages.
Sections holding no listed symbol keep the default order, and names that no longer exist are ignored, so an
outdated file costs memory, never correctness. Rerun after large changes to the hot paths, then rebuild:

    python3 bench/link_order.py --binary "$(scripts/build-release.sh)" && scripts/build-release.sh

Functions are ordered one by one only where the compiler put each in a section of its own: the Swift runtime
and standard library always; this package's modules when built with -function-sections (scripts/build-release.sh
does), otherwise by source file. Needs valgrind (callgrind), objcopy and nm; Linux only.
"""
import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (input generation and the HTTPS receiver)

ROOT = bench.ROOT
OUTPUT = os.path.join(ROOT, "packaging", "link-order.txt")


def callgrind_self_cost(path, object_name):
    """Self instruction counts per function of one object in a callgrind output file."""
    names, objects, cost = {}, {}, collections.Counter()
    current_object = current_function = None
    skip_next = False
    pattern = re.compile(r"^(ob|fl|fi|fe|fn|cob|cfi|cfl|cfn)=\((\d+)\)(?: (.*))?$")
    with open(path, errors="replace") as lines:
        for line in lines:
            line = line.rstrip("\n")
            if skip_next:  # the inclusive cost of a call, not the caller's own
                skip_next = False
                continue
            match = pattern.match(line)
            if match:
                kind, ident, name = match.groups()
                table = objects if kind in ("ob", "cob") else names if kind in ("fn", "cfn") else None
                if table is not None and name is not None:
                    table[ident] = name
                if kind == "ob":
                    current_object = objects.get(ident)
                elif kind == "fn":
                    current_function = names.get(ident)
                continue
            if line.startswith("calls="):
                skip_next = True
                continue
            if line[:1].isdigit() or line[:1] in "+-*":
                fields = line.split()
                if len(fields) >= 2 and current_function and current_object == object_name:
                    cost[current_function] += int(fields[1])
    return cost


class Agent:
    """`uplink run` under callgrind. Profile parts are dumped when the pipeline has started and `settle` seconds
    later (connections made, first batches sent); what follows is the steady state. A pipeline that does not end
    by itself is given `steady` seconds, dumped, and stopped, so that its shutdown counts as start-up."""

    def __init__(self, binary, config, out_prefix, stdin=None, settle=3.0, steady=None):
        self.out_prefix = out_prefix
        argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=%s.%%p" % out_prefix, "--demangle=no",
                "--dump-line=no", binary, "run", "--log-level", "info", config]
        self.process = subprocess.Popen(argv, stdin=stdin or subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        self.started = threading.Event()
        self.settled = threading.Event()
        self.settle, self.steady = settle, steady
        threading.Thread(target=self._watch, daemon=True).start()

    def _dump(self):
        subprocess.run(["callgrind_control", "-d", str(self.process.pid)], stdout=subprocess.DEVNULL)

    def _watch(self):
        for raw in self.process.stderr:
            if b"pipeline started" in raw and not self.started.is_set():
                self.started.set()
                self._dump()
                time.sleep(self.settle)
                self._dump()
                self.settled.set()
                if self.steady is not None:
                    time.sleep(self.steady)
                    self._dump()
                    self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout):
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            sys.exit("%s: still running after %d s under callgrind" % (self.out_prefix, timeout))
        if not self.settled.is_set():
            sys.exit("%s: the pipeline did not start, or ended before it settled, under callgrind" % self.out_prefix)

    def parts(self):
        """(start-up parts, the steady-state part) of the profile."""
        final = "%s.%d" % (self.out_prefix, self.process.pid)
        dumps = [final + ".%d" % index for index in (1, 2, 3) if os.path.exists(final + ".%d" % index)]
        if self.steady is not None:
            return dumps[:2] + [final], dumps[2]
        return dumps, final


def data_written(pid, binary):
    """Names of .data/.bss symbols whose bytes in process `pid` differ from their initial value."""
    sections = {}
    headers = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True, check=True).stdout
    for line in headers.splitlines():
        match = re.match(r"\s*\[\s*\d+\]\s+(\.data|\.bss)\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)", line)
        if match:
            sections[match.group(1)] = tuple(int(match.group(i), 16) for i in (2, 3, 4))
    images = []
    with open(binary, "rb") as image, open("/proc/%d/mem" % pid, "rb") as memory:
        for name, (address, offset, size) in sections.items():
            memory.seek(address)
            now = memory.read(size)
            if name == ".bss":
                initial = bytes(size)
            else:
                image.seek(offset)
                initial = image.read(size)
            images.append((address, now, initial))
    written = []
    symbols = subprocess.run(["nm", "-S", "--defined-only", binary], capture_output=True, text=True, check=True).stdout
    for line in symbols.splitlines():
        fields = line.split(" ", 3)
        if len(fields) != 4 or fields[2] not in "bBdD":
            continue
        address, size, name = int(fields[0], 16), max(int(fields[1], 16), 1), fields[3]
        for start, now, initial in images:
            if start <= address < start + len(now):
                offset = address - start
                if now[offset:offset + size] != initial[offset:offset + size]:
                    written.append(name)
                break
    return written


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "uplink"))
    parser.add_argument("--output", default=OUTPUT)
    args = parser.parse_args()
    for tool in ("valgrind", "callgrind_control", "objcopy", "nm", "readelf"):
        if shutil.which(tool) is None:
            sys.exit("%s is needed (apt-get install valgrind binutils)" % tool)

    work = tempfile.mkdtemp(prefix="uplink-link-order-")
    # valgrind cannot read the DWARF of a release build; the symbol table is all it needs.
    profiled = os.path.join(work, "uplink")
    subprocess.run(["objcopy", "--strip-debug", args.binary, profiled], check=True)

    lines = os.path.join(work, "input.log")
    bench.generate(lines, 300_000)
    csv = os.path.join(work, "input.csv")
    bench.generate_csv(csv, 300_000)
    idle_input = os.path.join(work, "idle.log")
    with open(idle_input, "w") as out:
        out.write("one line\n")
    receiver = bench.start_receiver(args.binary, work)
    sink = ("sinks:\n  cloud: { type: iotcore_http, inputs: [batch], endpoint: 'https://127.0.0.1:%d', ca_file: '%s',"
            " product_sn: abcdefgh12345678, device_sn: device001, device_secret: s3cr3tKey0000000 }\n"
            % (receiver["port"], receiver["ca"]))
    scenarios = {
        "https": ("sources:\n  in: { type: file, include: ['%s'], exit_on_eof: true }\ntransforms:\n"
                  "  wrap: { type: json, inputs: [in] }\n  batch: { type: batch, inputs: [wrap], encoding: ndjson }\n"
                  % lines + sink, None, None),
        "idle": ("sources:\n  in: { type: file, include: ['%s'], read_from: end }\n"
                 "sinks:\n  out: { type: stdout, inputs: [in] }\n" % idle_input, None, 5),
        "thing-model": ("sources:\n  in: { type: stdin }\ntransforms:\n"
                        "  wrap: { type: json, inputs: [in], mode: csv, columns: [time:int, temperature:float,"
                        " humidity:int, status] }\n"
                        "  model: { type: thing_model, inputs: [wrap], product_sn: abcdefgh12345678,"
                        " device_sn: device001, time_field: time }\n"
                        "  batch: { type: batch, inputs: [model] }\nsinks:\n  out: { type: stdout, inputs: [batch] }\n",
                        csv, None),
        "stdin-json": ("sources:\n  in: { type: stdin }\ntransforms:\n  wrap: { type: json, inputs: [in] }\n"
                       "sinks:\n  out: { type: stdout, inputs: [wrap] }\n", lines, None),
    }
    steady_by_scenario, startup = {}, collections.Counter()
    data = []
    try:
        for name, (body, stdin_path, steady) in scenarios.items():
            config = bench.write_config(work, name, "data_dir: %s/state-%s\n" % (work, name) + body)
            stdin = open(stdin_path, "rb") if stdin_path else None
            print("profiling %s under callgrind..." % name, file=sys.stderr)
            agent = Agent(profiled, config, os.path.join(work, "cg-" + name), stdin=stdin, steady=steady)
            agent.wait(900)
            dumps, steady = agent.parts()
            steady_by_scenario[name] = callgrind_self_cost(steady, profiled)
            for dump in dumps:
                startup.update(callgrind_self_cost(dump, profiled))
            if stdin:
                stdin.close()
            # Data: the same pipeline at full speed, kept alive after its input (the file tail waits for more,
            # stdin stays open) so that everything its run wrote can be read before it stops.
            live = bench.write_config(work, name + "-live", "data_dir: %s/state-live-%s\n" % (work, name)
                                      + body.replace(", exit_on_eof: true", ""))
            process = subprocess.Popen([args.binary, "run", "--log-level", "error", live], stdin=subprocess.PIPE,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if stdin_path:
                with open(stdin_path, "rb") as source:
                    shutil.copyfileobj(source, process.stdin)
                process.stdin.flush()
            time.sleep(3)
            if process.poll() is not None:
                sys.exit("%s: the agent stopped (%s) before its memory was read" % (name, process.returncode))
            data += data_written(process.pid, args.binary)
            process.stdin.close()
            process.send_signal(signal.SIGTERM)
            process.wait(60)
    finally:
        receiver["process"].terminate()
        receiver["process"].wait()

    # The idle agent's functions first: they are all an idle agent keeps resident, so they go together. Then each
    # busy pipeline's steady state (which also ends with its shutdown), hottest first, then start-up.
    functions = []
    for counts in [steady_by_scenario["idle"]] + [c for n, c in steady_by_scenario.items() if n != "idle"]:
        functions += [name for name, _ in counts.most_common()]
    functions = list(dict.fromkeys(functions))
    steady_count = len(functions)
    listed = set(functions)
    functions += [name for name, _ in startup.most_common() if name not in listed]
    variables = list(dict.fromkeys(data))
    with open(args.output, "w") as out:
        out.write("# Generated by bench/link_order.py (see there for why and when to rerun); lld --symbol-ordering-file.\n")
        out.write("# %d steady-state functions, %d start-up functions, %d written variables.\n"
                  % (steady_count, len(functions) - steady_count, len(variables)))
        out.write("\n".join(functions + variables) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    print("wrote %s: %d functions (%d steady state), %d variables" % (args.output, len(functions), steady_count, len(variables)))


if __name__ == "__main__":
    main()
