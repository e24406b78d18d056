#!/usr/bin/env python3
"""Same-run baseline for the lone_poll example: the CPU time of one run of what Datadog's
supervisord check does over the wire, in Python's own xmlrpc.client, against the same
supervisord.

One run, as the check makes it (see the check's behaviour notes): a new
`xmlrpc.client.ServerProxy` (so a new connection), `supervisor.getAllProcessInfo()`, then
`supervisor.getSupervisorVersion()` for the metadata. The check's own work on top (service
checks, tags, the aggregator) is not counted, so this is a lower bound of the check's cost.

Usage: python_poll.py URL RUNS
Prints one JSON object: process CPU seconds per run (best of 5 batches of RUNS runs), the
Python version.
"""

import json
import platform
import sys
import time
import xmlrpc.client


def one_run(url):
    server = xmlrpc.client.ServerProxy(url)
    processes = server.supervisor.getAllProcessInfo()
    server.supervisor.getSupervisorVersion()
    return len(processes)


def main():
    url, runs = sys.argv[1], int(sys.argv[2])
    count = one_run(url)  # fails loudly if supervisord does not answer
    best = None
    for _ in range(5):
        start = time.process_time()
        for _ in range(runs):
            one_run(url)
        spent = (time.process_time() - start) / runs
        best = spent if best is None else min(best, spent)
    json.dump(
        {
            "seconds_per_run": best,
            "processes": count,
            "python": platform.python_implementation() + " " + platform.python_version(),
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
