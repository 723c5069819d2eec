#!/usr/bin/env bash
# Tokenomics overhead benchmark: the same fixed upstream (nginx) called directly and through the
# proxy's full pipeline, at concurrency 1 and 64, buffered and streamed, with the proxy pinned to
# CPU 0 and nginx + wrk on CPU 1.
#
#   bench/run.sh                 (DURATION=10 seconds per run by default)
#
# Needs: nginx and wrk (Debian: apt-get install -y nginx-light wrk), and the dev venv (.venv,
# created by scripts/check). Prints a table; numbers are machine-specific, ratios are the point.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src"  # this checkout, whatever the venv's editable install points at
DURATION=${DURATION:-10}
for tool in nginx wrk taskset; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install -y nginx-light wrk)" >&2; exit 1; }
done
[ -x .venv/bin/python ] || { echo "bench: run scripts/check first to create .venv" >&2; exit 1; }

work=$(mktemp -d)
free_port() { .venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
NGINX_PORT=$(free_port)
PROXY_PORT=$(free_port)
cleanup() {
    [ -n "${PROXY_PID:-}" ] && kill "$PROXY_PID" 2>/dev/null && wait "$PROXY_PID" 2>/dev/null
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

sed -e "s#@DIR@#$work#g" -e "s#@PORT@#$NGINX_PORT#g" \
    -e "s#@JSON@#$(.venv/bin/python bench/responses.py json | sed 's/[#&]/\\&/g')#" \
    -e "s#@STREAM@#$(.venv/bin/python bench/responses.py stream | sed 's/[#&]/\\&/g')#" \
    bench/nginx.conf.template > "$work/nginx.conf"
taskset -c 1 nginx -c "$work/nginx.conf" -p "$work" &

export TOKENOMICS_DIR="$work/data" TOKENOMICS_HASH_KEY=bench-hash-key BENCH_KEY=sk-bench
export TOKENOMICS_SERVER_HTTP_PORT=$PROXY_PORT TOKENOMICS_SERVER_TLS_ENABLED=false
policy() {  # a policy that exercises every stage: provider routing, model regex, rate limit, budget
    printf '{"base_key_env":"BENCH_KEY","upstream_url":"http://127.0.0.1:%s%s","model_regex":"^gpt-","max_tokens":1000000000000,"rate_limit":{"rules":[{"requests":100000000,"window":"1m"}]}}' "$NGINX_PORT" "$1"
}
token() { .venv/bin/python -m tokenomics token create --policy "$(policy "$1")" --json | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["token"])'; }
BUFFERED_TOKEN=$(token "")
STREAM_TOKEN=$(token "/stream")
taskset -c 0 .venv/bin/python -m tokenomics serve 2>"$work/proxy.log" &
PROXY_PID=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$PROXY_PORT/health" >/dev/null 2>&1 && curl -sf "http://127.0.0.1:$NGINX_PORT/" -d '{}' >/dev/null 2>&1 && break
    sleep 0.1
done

run() {  # label stream concurrency url token
    local threads=1; [ "$3" -gt 1 ] && threads=2
    BENCH_STREAM=$2 BENCH_TOKEN=$5 taskset -c 1 wrk -t"$threads" -c"$3" -d"${DURATION}s" -s bench/post.lua "$4" \
        | sed -n "s/^BENCH /$1 c=$3 /p"
}
{
    for stream in 0 1; do
        path=$([ "$stream" = 1 ] && echo /stream || echo "")
        label=$([ "$stream" = 1 ] && echo streamed || echo buffered)
        for c in 1 64; do
            run "direct $label" "$stream" "$c" "http://127.0.0.1:$NGINX_PORT$path/v1/chat/completions" ""
            tok=$([ "$stream" = 1 ] && echo "$STREAM_TOKEN" || echo "$BUFFERED_TOKEN")
            run "proxy $label" "$stream" "$c" "http://127.0.0.1:$PROXY_PORT/v1/chat/completions" "$tok"
        done
    done
} | tee "$work/results.txt"
.venv/bin/python bench/report.py < "$work/results.txt"
