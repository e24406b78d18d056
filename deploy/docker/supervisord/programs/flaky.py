"""Runs 20 s, then fails: supervisord restarts it, the receiver counts the restarts."""
import sys
import time

print("starting", flush=True)
time.sleep(20)
print("lost the connection to the database, exiting", file=sys.stderr, flush=True)
sys.exit(3)
