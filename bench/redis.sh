#!/usr/bin/env bash
# Issue 18: what the Redis counters backend and `server.workers` cost or bring.
#
#   bench/redis.sh [TREE...]             (DURATION=5 seconds per run, ROUNDS=3)
#
# With source trees given (e.g. `/tmp/before/src $PWD/src`), each tree's Redis proxies run in
# the same interleaved rounds (labels end in @1, @2, ...: an A/B on a shared machine); the
# memory-backend reference is the first tree's. Default: this checkout's src.
#
# 1. Added latency at concurrency 1: the same proxy (policy of bench/run.sh: a rate limit and a
#    token budget, so each request makes one admission call before the upstream's, and a settle
#    that the next admission carries in its pipeline) with
#    `session.backend: memory`, then `redis` (a local redis-server on CPU 1), interleaved rounds.
# 2. Throughput at concurrency 64 with the Redis backend: one worker, then `server.workers: 2`
#    (both allowed on CPUs 0 and 1; nginx, wrk and redis share CPU 1).
#
# Needs nginx, wrk, redis-server and the dev venv (.venv). Numbers are machine-specific; on a
# shared VM compare the ratios of one run.
source "$(dirname "$0")/common.sh"
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
command -v redis-server >/dev/null || { echo "bench: redis-server is missing" >&2; exit 1; }

REDIS_PORT=$(free_port)
taskset -c 1 redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$work" >"$work/redis.log" 2>&1 &
server_pids+=($!)
start_nginx
url() { echo "http://127.0.0.1:$1/v1/chat/completions"; }

TREES=("$@")
[ ${#TREES[@]} -gt 0 ] || TREES=("$PWD/src")
tag() { [ ${#TREES[@]} -gt 1 ] && echo "@$1" || true; }

start_with() {  # tree name backend workers wrapper [sleep] -> PID PORT TOKEN
    local tree=$1 name=$2 backend=$3 workers=$4
    export TOKENOMICS_SESSION_BACKEND=$backend TOKENOMICS_SESSION_REDIS_ADDR=127.0.0.1:$REDIS_PORT
    export TOKENOMICS_SERVER_WORKERS=$workers
    PROXY_WRAPPER=$5 start_proxy "$tree" "$name" 0
    unset TOKENOMICS_SESSION_BACKEND TOKENOMICS_SESSION_REDIS_ADDR TOKENOMICS_SERVER_WORKERS
    sleep "${6:-0}"  # workers: give the second one time to listen
    measure "$PID" "$(url "$PORT")" "$TOKEN" 0 4 2 >/dev/null  # warm-up
}

declare -A pid port token
start_with "${TREES[0]}" memory memory 1 ""
pid[memory]=$PID port[memory]=$PORT token[memory]=$TOKEN
labels=(memory-c1)
for i in "${!TREES[@]}"; do
    n=$((i + 1))
    start_with "${TREES[$i]}" "redis$n" redis 1 ""
    pid[redis$n]=$PID port[redis$n]=$PORT token[redis$n]=$TOKEN
    labels+=("redis-c1$(tag $n)")
done

run_c() {  # label name concurrency
    printf '%s\t%s\t%s\n' "$1" "$round" "$(measure "${pid[$2]}" "$(url "${port[$2]}")" "${token[$2]}" 0 "$3" "$DURATION")"
}
printf 'label\tround\trequests\treq/s\tcpu_ms/req\tp50_ms\terrors\n'
for round in $(seq "$ROUNDS"); do
    run_c memory-c1 memory 1
    for i in "${!TREES[@]}"; do run_c "redis-c1$(tag $((i + 1)))" "redis$((i + 1))" 1; done
done | tee "$work/latency.tsv"
for name in "${!pid[@]}"; do kill "${pid[$name]}"; wait "${pid[$name]}" 2>/dev/null || true; done
pid=()

wlabels=()
for i in "${!TREES[@]}"; do
    n=$((i + 1))
    start_with "${TREES[$i]}" "one$n" redis 1 "taskset -c 0,1"
    pid[one$n]=$PID port[one$n]=$PORT token[one$n]=$TOKEN
    start_with "${TREES[$i]}" "two$n" redis 2 "taskset -c 0,1" 8
    pid[two$n]=$PID port[two$n]=$PORT token[two$n]=$TOKEN
    wlabels+=("workers1-c64$(tag $n)" "workers2-c64$(tag $n)")
done
for round in $(seq "$ROUNDS"); do
    for i in "${!TREES[@]}"; do
        n=$((i + 1))
        run_c "workers1-c64$(tag $n)" "one$n" 64
        run_c "workers2-c64$(tag $n)" "two$n" 64
    done
done | tee "$work/workers.tsv"
echo
summary "$work/latency.tsv" "${labels[@]}"
summary "$work/workers.tsv" "${wlabels[@]}"
echo "(the CPU/req of workers2 is the supervisor's only: ignore it)"
