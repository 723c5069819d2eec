#!/usr/bin/env bash
# Issue 18: what the Redis counters backend and `server.workers` cost or bring.
#
#   bench/redis.sh                       (DURATION=5 seconds per run, ROUNDS=3)
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

start_with() {  # name backend workers wrapper -> PID PORT TOKEN
    local name=$1 backend=$2 workers=$3
    export TOKENOMICS_SESSION_BACKEND=$backend TOKENOMICS_SESSION_REDIS_ADDR=127.0.0.1:$REDIS_PORT
    export TOKENOMICS_SERVER_WORKERS=$workers
    PROXY_WRAPPER=$4 start_proxy "$PWD/src" "$name" 0
    unset TOKENOMICS_SESSION_BACKEND TOKENOMICS_SESSION_REDIS_ADDR TOKENOMICS_SERVER_WORKERS
    sleep "${5:-0}"  # workers: give the second one time to listen
    measure "$PID" "$(url "$PORT")" "$TOKEN" 0 4 2 >/dev/null  # warm-up
}

start_with memory memory 1 ""
mem_pid=$PID mem_port=$PORT mem_token=$TOKEN
start_with redis redis 1 ""
red_pid=$PID red_port=$PORT red_token=$TOKEN

printf 'label\tround\trequests\treq/s\tcpu_ms/req\tp50_ms\terrors\n'
for round in $(seq "$ROUNDS"); do
    printf 'memory-c1\t%s\t%s\n' "$round" "$(measure "$mem_pid" "$(url "$mem_port")" "$mem_token" 0 1 "$DURATION")"
    printf 'redis-c1\t%s\t%s\n' "$round" "$(measure "$red_pid" "$(url "$red_port")" "$red_token" 0 1 "$DURATION")"
done | tee "$work/latency.tsv"
kill "$mem_pid" "$red_pid"; wait "$mem_pid" "$red_pid" 2>/dev/null || true

start_with one redis 1 "taskset -c 0,1"
one_pid=$PID one_port=$PORT one_token=$TOKEN
start_with two redis 2 "taskset -c 0,1" 8
two_pid=$PID two_port=$PORT two_token=$TOKEN
for round in $(seq "$ROUNDS"); do
    printf 'workers1-c64\t%s\t%s\n' "$round" "$(measure "$one_pid" "$(url "$one_port")" "$one_token" 0 64 "$DURATION")"
    printf 'workers2-c64\t%s\t%s\n' "$round" "$(measure "$two_pid" "$(url "$two_port")" "$two_token" 0 64 "$DURATION")"
done | tee "$work/workers.tsv"
echo
summary "$work/latency.tsv" memory-c1 redis-c1
summary "$work/workers.tsv" workers1-c64 workers2-c64
echo "(the CPU/req of workers2 is the supervisor's only: ignore it)"
