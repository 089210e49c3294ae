#!/usr/bin/env python3
"""A seeded day of a 1 Hz serial sensor for the bandwidth table: `time,temperature,humidity,status` lines.

Temperature: a slow daily drift (22 °C ± 3) plus noise (σ 0.05 °C), at the sensor's 0.1 °C resolution; humidity:
a drift the other way (50 %RH ± 10) plus noise (σ 0.3), whole percent. Four overheat alarms (status
`overheat`, 96 °C) and six probe glitches (-127 °C, impossible) are placed at seeded seconds.

Usage: bench/edge_trace.py [--seconds 86400] [--seed 18] [--start-ms 1764547200000] > trace.csv
"""
import argparse
import math
import random
import sys


def trace(seconds, seed, start_ms):
    rng = random.Random(seed)
    alarms = set(rng.sample(range(seconds), min(4, seconds)))
    glitches = set(rng.sample(range(seconds), min(6, seconds))) - alarms
    for second in range(seconds):
        phase = 2 * math.pi * second / 86400
        time = start_ms + second * 1000
        if second in alarms:
            yield "%d,96.0,%d,overheat" % (time, 35)
            continue
        if second in glitches:
            yield "%d,-127.0,%d,ok" % (time, 50)
            continue
        temperature = round(22 + 3 * math.sin(phase) + rng.gauss(0, 0.05), 1)
        humidity = round(50 - 10 * math.sin(phase) + rng.gauss(0, 0.3))
        yield "%d,%.1f,%d,ok" % (time, temperature, humidity)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=86400)
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--start-ms", type=int, default=1764547200000)
    args = parser.parse_args()
    out = sys.stdout
    for line in trace(args.seconds, args.seed, args.start_ms):
        out.write(line + "\n")


if __name__ == "__main__":
    main()
