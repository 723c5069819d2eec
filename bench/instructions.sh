#!/usr/bin/env bash
# The proxy's CPU instructions per request, counted by valgrind's callgrind: a deterministic
# number (within ~0.5% between runs) where wall-clock figures on a shared VM swing by 30%.
#
#   bench/instructions.sh [tree...]        (default: this checkout's src)
#
# For each source tree and mode (buffered, streamed): the full pipeline (policy of bench/run.sh)
# under callgrind, 100 warm-up requests, counters zeroed, N requests one after another
# (bench/sequential.py), a pause for the ledger's batch (its work counts too), then the count.
# User-space instructions only: syscalls and cache misses are not in it, so it ranks changes
# to Python code well and says nothing about the kernel's share.
#
# Environment: N (200), MODES ("0 1": buffered, streamed), PROXY_ENV (extra variables for the
# proxy, e.g. "TOKENOMICS_LEDGER_MEMORY=false"). Needs valgrind (apt-get install -y valgrind).
source "$(dirname "$0")/common.sh"
command -v valgrind >/dev/null || { echo "bench: valgrind is missing (apt-get install -y valgrind)" >&2; exit 1; }
N=${N:-200}
trees=("$@")
[ ${#trees[@]} -eq 0 ] && trees=("$PWD/src")

start_nginx
for tree in "${trees[@]}"; do
    for stream in ${MODES:-0 1}; do
        name="p$RANDOM"
        # shellcheck disable=SC2086
        PROXY_WRAPPER="env ${PROXY_ENV:-} PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=$work/$name.cg.%p" \
            WAIT_TRIES=${WAIT_TRIES:-1200} start_proxy "$tree" "$name" "$stream"
        .venv/bin/python bench/sequential.py "$PORT" "$TOKEN" 100 "$stream"
        sleep 1
        callgrind_control -z "$PID" >/dev/null 2>&1
        .venv/bin/python bench/sequential.py "$PORT" "$TOKEN" "$N" "$stream"
        sleep 1.5  # the ledger's batch of these requests
        callgrind_control -d "$PID" >/dev/null 2>&1
        sleep 1
        total=$(cat "$work/$name".cg.*.* | awk '/^totals:/ {s += $2} END {print s}')
        kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
        mode=$([ "$stream" = 1 ] && echo streamed || echo buffered)
        printf '%s %s: %.2f M instructions per request\n' "$tree" "$mode" "$(echo "$total / $N / 1000000" | bc -l)"
    done
done
