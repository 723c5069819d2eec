#!/usr/bin/env bash
# Proxy CPU time per request: the most stable overhead metric on a noisy machine.
#
#   bench/cpu_per_request.sh                      # this checkout's src/
#   bench/cpu_per_request.sh /tmp/a/src /tmp/b/src   # A/B: interleaved rounds, one proxy per tree
#
# Starts the bench nginx (CPU 1) and one proxy per source tree (CPU 0, PYTHONPATH=<tree>, each with
# its own data dir and a policy exercising every stage, as in bench/run.sh). Then, ROUNDS times,
# for each tree in turn: read utime+stime of the proxy from /proc/<pid>/stat, run wrk for DURATION
# seconds at concurrency CONC, read them again. Prints per run and, at the end, the median per
# tree of: CPU ms per request, requests/s, p50 latency (and the best round: contention on a
# shared machine only ever adds, so the best is the least disturbed).
#
# Environment: DURATION (default 10), CONC (64), ROUNDS (3), STREAM (0 = buffered, 1 = SSE).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONC=${CONC:-64}
ROUNDS=${ROUNDS:-3}
STREAM=${STREAM:-0}
for tool in nginx wrk taskset; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install -y nginx-light wrk)" >&2; exit 1; }
done
[ -x .venv/bin/python ] || { echo "bench: run scripts/check first to create .venv" >&2; exit 1; }
trees=("$@")
[ ${#trees[@]} -gt 0 ] || trees=("$PWD/src")

work=$(mktemp -d)
free_port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

NGINX_PORT=$(free_port)
sed -e "s#@DIR@#$work#g" -e "s#@PORT@#$NGINX_PORT#g" \
    -e "s#@JSON@#$(.venv/bin/python bench/responses.py json | sed 's/[#&]/\\&/g')#" \
    -e "s#@STREAM@#$(.venv/bin/python bench/responses.py stream | sed 's/[#&]/\\&/g')#" \
    bench/nginx.conf.template > "$work/nginx.conf"
taskset -c 1 nginx -c "$work/nginx.conf" -p "$work" &

path=$([ "$STREAM" = 1 ] && echo /stream || echo "")
policy=$(printf '{"base_key_env":"BENCH_KEY","upstream_url":"http://127.0.0.1:%s%s","model_regex":"^gpt-","max_tokens":1000000000000,"rate_limit":{"rules":[{"requests":100000000,"window":"1m"}]}}' "$NGINX_PORT" "$path")
export TOKENOMICS_HASH_KEY=bench-hash-key BENCH_KEY=sk-bench TOKENOMICS_SERVER_TLS_ENABLED=false
ports=() tokens=()
for i in "${!trees[@]}"; do
    port=$(free_port)
    export TOKENOMICS_DIR="$work/data$i" TOKENOMICS_SERVER_HTTP_PORT=$port PYTHONPATH=${trees[$i]}
    tokens[i]=$(.venv/bin/python -m tokenomics token create --policy "$policy" --json \
        | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["token"])')
    taskset -c 0 .venv/bin/python -m tokenomics serve 2>"$work/proxy$i.log" &
    pids[i]=$!
    ports[i]=$port
done
unset PYTHONPATH
for i in "${!trees[@]}"; do
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:${ports[$i]}/health" >/dev/null 2>&1 && break
        sleep 0.1
    done
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime, in clock ticks
hz=$(getconf CLK_TCK)
threads=1; [ "$CONC" -gt 1 ] && threads=2
url() { echo "http://127.0.0.1:${ports[$1]}/v1/chat/completions"; }
for i in "${!trees[@]}"; do  # warm-up: connections, tiktoken, first-call caches
    BENCH_STREAM=$STREAM BENCH_TOKEN=${tokens[$i]} taskset -c 1 wrk -t1 -c4 -d2s -s bench/post.lua "$(url "$i")" >/dev/null
done
printf 'tree\tround\trequests\treq/s\tcpu_ms/req\tp50_ms\terrors\n'
for round in $(seq "$ROUNDS"); do
    for i in "${!trees[@]}"; do
        before=$(cpu_ticks "${pids[$i]}")
        line=$(BENCH_STREAM=$STREAM BENCH_TOKEN=${tokens[$i]} taskset -c 1 wrk -t"$threads" -c"$CONC" \
            -d"${DURATION}s" -s bench/post.lua "$(url "$i")" | sed -n 's/^BENCH //p')
        after=$(cpu_ticks "${pids[$i]}")
        echo "$line" | .venv/bin/python -c '
import json, sys
tree, rnd, ticks, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
r = json.loads(sys.stdin.read())
n, seconds, p50 = max(r["requests"], 1), r["duration_us"] / 1e6, r["p50_us"] / 1000
fields = [tree, rnd, r["requests"], f"{n / seconds:.0f}", f"{ticks / hz * 1000 / n:.3f}",
          f"{p50:.2f}", r["errors"] + r["non2xx"]]
print(*fields, sep="\t")
' "$i" "$round" "$((after - before))" "$hz"
    done
done | tee "$work/runs.tsv"
echo
echo "per tree: median (best) of the rounds"
.venv/bin/python - "$work/runs.tsv" "${trees[@]}" <<'EOF'
import statistics, sys
rows = [line.split("\t") for line in open(sys.argv[1]).read().splitlines() if line]
for i, tree in enumerate(sys.argv[2:]):
    col = lambda c: [float(r[c]) for r in rows if r[0] == str(i)]  # noqa: E731
    cpu, rps, p50 = col(4), col(3), col(5)
    print(f"  [{i}] {tree}: {statistics.median(cpu):.3f} ({min(cpu):.3f}) ms CPU/req, "
          f"{statistics.median(rps):.0f} ({max(rps):.0f}) req/s, "
          f"p50 {statistics.median(p50):.2f} ({min(p50):.2f}) ms")
EOF
