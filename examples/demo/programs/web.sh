#!/bin/sh
# A small web server: stays up, so supervisord reports it RUNNING.
# It serves this folder on the port supervisord passes in DEMO_WEB_PORT.
cd "$(dirname "$0")" || exit 1
exec python3 -m http.server --bind 127.0.0.1 "${DEMO_WEB_PORT:-0}"
