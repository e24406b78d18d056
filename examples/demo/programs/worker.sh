#!/bin/sh
# A queue worker: loops forever, so it stays RUNNING. Two copies run in the `workers` group.
n=0
while :; do
    n=$((n + 1))
    echo "$(date '+%H:%M:%S') ${SUPERVISOR_PROCESS_NAME:-worker}: processed job $n"
    sleep 5
done
