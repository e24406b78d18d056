#!/usr/bin/env python3
"""Same-run baseline for benches/ratio.rs: CPU time of Python's xmlrpc.client.loads, the
parser behind Datadog's supervisord check, on the given reply files.

Each file is timed as benches/ratio.rs times the Rust decoder: `repeat` runs of `number`
calls, where `number` is the smallest power of ten whose run takes at least `min_time`
seconds of CPU; the result is the best run divided by `number`, in seconds of process CPU
time (time.process_time). timeit switches the garbage collector off while it times, which
flatters Python slightly.

Usage: python_baseline.py --repeat N --min-time SECONDS FILE...
Prints one JSON object on stdout.
"""

import argparse
import json
import platform
import sys
import time
import timeit
import xmlrpc.client


def calibrate(timer, min_time):
    number = 1
    while True:
        if timer.timeit(number) >= min_time:
            return number
        number *= 10


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, required=True)
    parser.add_argument("--min-time", type=float, required=True)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()

    results = []
    for path in args.files:
        with open(path, "rb") as f:
            data = f.read()
        # Fails loudly if the bytes are not a reply Python accepts.
        xmlrpc.client.loads(data)
        timer = timeit.Timer(lambda: xmlrpc.client.loads(data), timer=time.process_time)
        number = calibrate(timer, args.min_time)
        runs = timer.repeat(repeat=args.repeat, number=number)
        results.append(
            {
                "file": path,
                "bytes": len(data),
                "number": number,
                "repeat": args.repeat,
                "best_cpu_seconds_per_call": min(runs) / number,
            }
        )
    json.dump(
        {
            "python": platform.python_implementation() + " " + platform.python_version(),
            "results": results,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
