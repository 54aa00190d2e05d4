#!/bin/sh
# tests/conformance/run.sh [--target meshcdn|nginx|varnish] [--id TEST-ID] [--failures] ...
# The HTTP cache conformance suite (http-cache-tests, pinned in run.py) against
# meshcdn-edge (default), nginx proxy_cache or Varnish; see README.md here.
exec python3 "$(dirname "$0")/run.py" "$@"
