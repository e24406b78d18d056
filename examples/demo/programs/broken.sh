#!/bin/sh
# A misconfigured service: fails at once, every time; supervisord gives up and marks it FATAL.
echo "error: /etc/broken/settings.ini not found" >&2
exit 78
