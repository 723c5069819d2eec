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
# Columns: CPU per request is the proxy's with its workers (a supervisor's children counted),
# and Redis's apart (redis_cpu_ms/req, the server's own share of the CPU it has with nginx
# and wrk: with two workers on both CPUs, what it takes is what the workers do not get).
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
REDIS_PID=$!
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

ticks() {  # PID... -> their utime + stime, clock ticks
    local total=0 pid
    for pid in "$@"; do total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done
    echo "$total"
}
run_c() {  # label name concurrency
    # CPU per request of the proxy and its workers (the supervisor's children), and Redis's
    local pids=("${pid[$2]}" $(pgrep -P "${pid[$2]}" || true)) line proxy0 redis0 proxy1 redis1 n
    proxy0=$(ticks "${pids[@]}") redis0=$(ticks "$REDIS_PID")
    line=$(measure "${pid[$2]}" "$(url "${port[$2]}")" "${token[$2]}" 0 "$3" "$DURATION")
    proxy1=$(ticks "${pids[@]}") redis1=$(ticks "$REDIS_PID")
    n=$(echo "$line" | cut -f1); [ "${n:-0}" -gt 0 ] || n=1
    line=$(echo "$line" | awk -F'\t' -v OFS='\t' -v t="$((proxy1 - proxy0))" -v n="$n" \
        -v hz="$(getconf CLK_TCK)" '{$3 = sprintf("%.3f", t / hz * 1000 / (n > 0 ? n : 1)); print}')
    printf '%s\t%s\t%s\t%.3f\n' "$1" "$round" "$line" \
        "$(echo "($redis1 - $redis0) / $(getconf CLK_TCK) * 1000 / $n" | bc -l)"
}
printf 'label\tround\trequests\treq/s\tcpu_ms/req\tp50_ms\terrors\tredis_cpu_ms/req\n'
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
redis_summary() {  # FILE: Redis CPU per request, median per label
    .venv/bin/python - "$1" <<'EOF'
import statistics, sys
rows = [line.split("\t") for line in open(sys.argv[1]).read().splitlines() if line]
for label in dict.fromkeys(r[0] for r in rows if r[0] != "label"):
    print(f"  {label}: Redis {statistics.median(float(r[7]) for r in rows if r[0] == label):.3f}"
          " ms CPU/req")
EOF
}
redis_summary "$work/latency.tsv"
redis_summary "$work/workers.tsv"
echo "(CPU/req: the proxy's, with its workers; Redis's apart, on the CPU it shares with nginx and wrk)"
