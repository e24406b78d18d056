#!/bin/sh
# A one-shot job: does its work, then exits 0; with autorestart=false it stays EXITED.
echo "applying migrations"
sleep 2
echo "migrations applied"
exit 0
