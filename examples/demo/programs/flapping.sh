#!/bin/sh
# A crash-looping service: dies before it counts as started, so supervisord keeps retrying it
# with a growing delay and reports it in BACKOFF most of the time.
echo "starting up"
sleep 0.5
echo "lost connection to the database" >&2
exit 1
