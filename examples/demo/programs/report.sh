#!/bin/sh
# A report job started by hand (`supervisorctl start nightly-report`); autostart=false, so it
# is STOPPED until then.
echo "building the nightly report"
sleep 30
echo "report done"
