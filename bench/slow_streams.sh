#!/usr/bin/env bash
# Memory under slow streams: N concurrent streamed requests through the proxy (full pipeline,
# the policy of bench/run.sh), each a chunk every INTERVAL s for DURATION s from a Python
# upstream (bench/slow_streams.py, on CPU 1). Samples the proxy's RSS every second and prints
# its baseline, peak (VmHWM) and the samples while the streams run (flat is the goal).
#
#   bench/slow_streams.sh [tree]      Environment: N (1000), INTERVAL (0.1), DURATION (30)
source "$(dirname "$0")/common.sh"
N=${N:-1000}
INTERVAL=${INTERVAL:-0.1}
DURATION=${DURATION:-30}
tree=${1:-$PWD/src}

NGINX_PORT=$(free_port)  # start_proxy points the policy's upstream here
PYTHONPATH="$PWD/src" taskset -c 1 .venv/bin/python bench/slow_streams.py upstream "$NGINX_PORT" \
    "$INTERVAL" "$DURATION" >"$work/upstream.log" 2>&1 &
server_pids+=($!)
start_proxy "$tree" slow 1
sleep "${WARM:-2}"  # settle (no vocabulary loads at start: docs/DECISIONS.md, D-vocabularies)
baseline=$(rss "$PID")
echo "baseline RSS now/peak MB: $baseline"
( while kill -0 "$PID" 2>/dev/null; do rss "$PID" | cut -f1; sleep 1; done ) >"$work/rss" &
sampler=$!
result=$(PYTHONPATH="$PWD/src" taskset -c 1 .venv/bin/python bench/slow_streams.py client "$PORT" "$TOKEN" "$N")
kill "$sampler" 2>/dev/null || true
echo "streams completed/failed: $result"
echo "RSS samples MB (1/s): $(tr '\n' ' ' <"$work/rss")"
end=$(rss "$PID")
echo "end RSS now/peak MB: $end"
echo "peak growth per stream KB: $(( ($(cut -f2 <<<"$end") - $(cut -f1 <<<"$baseline")) * 1024 / N ))"
