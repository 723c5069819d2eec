#!/usr/bin/env bash
# Proxy CPU time per request: the most stable overhead metric on a noisy machine.
#
#   bench/cpu_per_request.sh                          # this checkout's src/
#   bench/cpu_per_request.sh /tmp/a/src /tmp/b/src    # A/B: interleaved rounds, one proxy per tree
#
# Starts the bench nginx (CPU 1) and one proxy per source tree (CPU 0, PYTHONPATH=<tree>, each with
# its own data dir and the policy of bench/run.sh, which exercises every stage). Then, ROUNDS
# times, for each tree in turn: read utime+stime of the proxy from /proc/<pid>/stat, run wrk for
# DURATION seconds at concurrency CONC, read them again. Prints every run, then per tree the
# median and the best round of: CPU ms per request, requests/s, p50 latency (contention on a
# shared machine only ever adds, so the best round is the least disturbed one), and each
# proxy's resident memory at the end (VmRSS) and at its peak (VmHWM).
#
# Environment: DURATION (default 10), CONC (64), ROUNDS (3), STREAM (0 = buffered, 1 = SSE).
source "$(dirname "$0")/common.sh"
DURATION=${DURATION:-10}
CONC=${CONC:-64}
ROUNDS=${ROUNDS:-3}
STREAM=${STREAM:-0}
trees=("$@")
[ ${#trees[@]} -gt 0 ] || trees=("$PWD/src")

start_nginx
pids=() ports=() tokens=()
for i in "${!trees[@]}"; do
    start_proxy "${trees[$i]}" "proxy$i" "$STREAM"
    pids[i]=$PID ports[i]=$PORT tokens[i]=$TOKEN
done
url() { echo "http://127.0.0.1:${ports[$1]}/v1/chat/completions"; }
for i in "${!trees[@]}"; do  # warm-up: connections, vocabularies, first-call caches
    measure "${pids[$i]}" "$(url "$i")" "${tokens[$i]}" "$STREAM" 4 2 >/dev/null
done

printf 'tree\tround\trequests\treq/s\tcpu_ms/req\tp50_ms\terrors\n'
for round in $(seq "$ROUNDS"); do
    for i in "${!trees[@]}"; do
        printf '%s\t%s\t%s\n' "$i" "$round" \
            "$(measure "${pids[$i]}" "$(url "$i")" "${tokens[$i]}" "$STREAM" "$CONC" "$DURATION")"
    done
done | tee "$work/runs.tsv"
echo
for i in "${!trees[@]}"; do
    echo "[$i] ${trees[$i]}  RSS now/peak MB: $(rss "${pids[$i]}")"
done
summary "$work/runs.tsv" "${!trees[@]}"
