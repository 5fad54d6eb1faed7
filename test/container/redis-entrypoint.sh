#!/bin/sh
# TEST ONLY (see redis.Containerfile): what the official image's entrypoint does for redis-server.
set -eu
if [ "$1" = redis-server ]; then
  shift
  exec redis-server --protected-mode no "$@"
fi
exec "$@"
