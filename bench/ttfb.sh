#!/usr/bin/env bash
# Time to first byte of a stream (issue 14: <= 1 ms over direct): nginx directly, then a proxy
# of each source tree (policy of bench/run.sh), request by request in turn (bench/ttfb.py).
#
#   bench/ttfb.sh [tree...]          (default: this checkout's src)
#
# Environment: N (500 requests per target), STREAM (1; 0 for buffered replies).
source "$(dirname "$0")/common.sh"
N=${N:-500}
STREAM=${STREAM:-1}
trees=("$@")
[ ${#trees[@]} -eq 0 ] && trees=("$PWD/src")

start_nginx
path=$([ "$STREAM" = 1 ] && echo /stream || echo "")
specs=("direct=http://127.0.0.1:$NGINX_PORT$path/v1/chat/completions")
i=0
for tree in "${trees[@]}"; do
    i=$((i + 1))
    start_proxy "$tree" "p$i" "$STREAM"
    specs+=("proxy$i=http://127.0.0.1:$PORT/v1/chat/completions,$TOKEN")
    echo "proxy$i: $tree"
done
taskset -c 1 .venv/bin/python bench/ttfb.py "$N" "$STREAM" "${specs[@]}"
