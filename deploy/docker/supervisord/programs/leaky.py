"""A slow leak: holds 512 KiB more every 10 s (3 MiB a minute) up to 512 MiB, then exits and
is restarted. The memory-growth alert compares with an hour ago, so it fires after about 75 min."""
import time

CHUNK = 512 * 1024
held = []
while len(held) * CHUNK < 512 * 1024 * 1024:
    held.append(b"x" * CHUNK)  # written, so resident
    time.sleep(10)
print("out of memory budget, exiting", flush=True)
