"""A worker: prints a line every few seconds (sent as log records with `output: true`)."""
import sys
import time

n = 0
while True:
    n += 1
    print(f"processed batch {n}", flush=True)
    if n % 5 == 0:
        print(f"batch {n} was slow", file=sys.stderr, flush=True)
    time.sleep(3)
