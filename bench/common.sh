# Shared by bench/cpu_per_request.sh and bench/floors.sh (sourced, not run): the fixed nginx
# upstream on CPU 1, proxies on CPU 0, wrk runs that report the server's CPU time per request.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
for tool in nginx wrk taskset; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install -y nginx-light wrk)" >&2; exit 1; }
done
[ -x .venv/bin/python ] || { echo "bench: run scripts/check first to create .venv" >&2; exit 1; }

work=$(mktemp -d)
server_pids=()
cleanup() {
    # `|| true`: under `set -e`, a killed process's status (143) ended the trap at the first
    # one and left the others (and nginx) running.
    for pid in "${server_pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq "${2:-100}"); do curl -sf "$1" >/dev/null 2>&1 && return; sleep 0.1; done; }

start_nginx() {  # sets NGINX_PORT
    NGINX_PORT=$(free_port)
    sed -e "s#@DIR@#$work#g" -e "s#@PORT@#$NGINX_PORT#g" \
        -e "s#@JSON@#$(.venv/bin/python bench/responses.py json | sed 's/[#&]/\\&/g')#" \
        -e "s#@STREAM@#$(.venv/bin/python bench/responses.py stream | sed 's/[#&]/\\&/g')#" \
        bench/nginx.conf.template > "$work/nginx.conf"
    taskset -c 1 nginx -c "$work/nginx.conf" -p "$work" >"$work/nginx.out" 2>&1 &
    wait_for "http://127.0.0.1:$NGINX_PORT/"
}

start_proxy() {  # tree name stream -> sets PORT and TOKEN; policy as in bench/run.sh
    # (PROXY_WRAPPER, e.g. a valgrind command line, runs in front of the proxy's python)
    local tree=$1 name=$2 path=""
    [ "$3" = 1 ] && path=/stream
    local policy
    policy=$(printf '{"base_key_env":"BENCH_KEY","upstream_url":"http://127.0.0.1:%s%s","model_regex":"^gpt-","max_tokens":1000000000000,"rate_limit":{"rules":[{"requests":100000000,"window":"1m"}]}}' "$NGINX_PORT" "$path")
    PORT=$(free_port)
    TOKEN=$(env PYTHONPATH="$tree" TOKENOMICS_DIR="$work/$name" TOKENOMICS_HASH_KEY=bench-hash-key \
        .venv/bin/python -m tokenomics token create --policy "$policy" --json \
        | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["token"])')
    env PYTHONPATH="$tree" TOKENOMICS_DIR="$work/$name" TOKENOMICS_HASH_KEY=bench-hash-key \
        BENCH_KEY=sk-bench TOKENOMICS_SERVER_HTTP_PORT="$PORT" TOKENOMICS_SERVER_TLS_ENABLED=false \
        taskset -c 0 ${PROXY_WRAPPER:-} .venv/bin/python -m tokenomics serve >"$work/$name.log" 2>&1 &
    server_pids+=($!)
    PID=$!
    wait_for "http://127.0.0.1:$PORT/health" "${WAIT_TRIES:-100}"
}

# measure PID URL TOKEN STREAM CONC SECONDS -> "requests req/s cpu_ms/req p50_ms errors"
measure() {
    local pid=$1 url=$2 token=$3 stream=$4 conc=$5 seconds=$6 threads=1 before after line
    [ "$conc" -gt 1 ] && threads=2
    before=$(awk '{print $14 + $15}' "/proc/$pid/stat")  # utime + stime, clock ticks
    line=$(BENCH_STREAM=$stream BENCH_TOKEN=$token taskset -c 1 wrk -t"$threads" -c"$conc" \
        -d"${seconds}s" -s bench/post.lua "$url" | sed -n 's/^BENCH //p')
    after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    echo "$line" | .venv/bin/python -c '
import json, sys
ticks, hz = int(sys.argv[1]), int(sys.argv[2])
r = json.loads(sys.stdin.read())
n, seconds, p50 = max(r["requests"], 1), r["duration_us"] / 1e6, r["p50_us"] / 1000
print(r["requests"], f"{n / seconds:.0f}", f"{ticks / hz * 1000 / n:.3f}", f"{p50:.2f}",
      r["errors"] + r["non2xx"], sep="\t")
' "$((after - before))" "$(getconf CLK_TCK)"
}

# rss PID -> "current_MB peak_MB" of the process (VmRSS, VmHWM)
rss() {
    awk '/^VmRSS/ {r = $2} /^VmHWM/ {h = $2} END {printf "%.0f\t%.0f\n", r / 1024, h / 1024}' "/proc/$1/status"
}

# summary FILE LABEL... : per label (column 1 of FILE), median and best of the rounds
summary() {
    .venv/bin/python - "$@" <<'EOF'
import statistics, sys
rows = [line.split("\t") for line in open(sys.argv[1]).read().splitlines() if line]
print("median (best) over the rounds")
for label in sys.argv[2:]:
    mine = [r for r in rows if r[0] == label]
    col = lambda c: [float(r[c]) for r in mine]  # noqa: E731
    cpu, rps, p50 = col(4), col(3), col(5)
    print(f"  {label}: {statistics.median(cpu):.3f} ({min(cpu):.3f}) ms CPU/req, "
          f"{statistics.median(rps):.0f} ({max(rps):.0f}) req/s, "
          f"p50 {statistics.median(p50):.2f} ({min(p50):.2f}) ms, errors {sum(col(6)):.0f}")
EOF
}
