#!/usr/bin/env bash
# Resident memory after many requests: the issue-14 target (RSS <= 100 MB after 100k requests).
#
#   bench/rss.sh                          # this checkout's src/
#   bench/rss.sh /tmp/a/src /tmp/b/src    # one proxy per tree, the same load for each
#
# Starts the bench nginx and one proxy per source tree (the policy of bench/run.sh: routing,
# model regex, rate limit, token budget). For each proxy: its RSS once started, then wrk at
# concurrency CONC in runs of CHUNK seconds until REQUESTS requests were served, half buffered
# and half streamed (MODES="0 1"; "0" for buffered only), printing RSS now/peak after each run.
#
# Environment: REQUESTS (100000), CONC (64), CHUNK (10), MODES ("0 1").
source "$(dirname "$0")/common.sh"
REQUESTS=${REQUESTS:-100000}
CONC=${CONC:-64}
CHUNK=${CHUNK:-10}
MODES=${MODES:-0 1}
trees=("$@")
[ ${#trees[@]} -gt 0 ] || trees=("$PWD/src")
read -ra modes <<<"$MODES"

start_nginx
for i in "${!trees[@]}"; do
    start_proxy "${trees[$i]}" "proxy$i" 0
    buffered=$TOKEN
    # a second token whose policy points at the streamed answer (same proxy, same data dir)
    policy=$(printf '{"base_key_env":"BENCH_KEY","upstream_url":"http://127.0.0.1:%s/stream","model_regex":"^gpt-","max_tokens":1000000000000,"rate_limit":{"rules":[{"requests":100000000,"window":"1m"}]}}' "$NGINX_PORT")
    streamed=$(env PYTHONPATH="${trees[$i]}" TOKENOMICS_DIR="$work/proxy$i" TOKENOMICS_HASH_KEY=bench-hash-key \
        .venv/bin/python -m tokenomics token create --policy "$policy" --json \
        | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["token"])')
    url="http://127.0.0.1:$PORT/v1/chat/completions"
    echo "[$i] ${trees[$i]}"
    echo "  started: RSS now/peak MB $(rss "$PID")"
    done=0
    per_mode=$((REQUESTS / ${#modes[@]}))
    for mode in "${modes[@]}"; do
        token=$([ "$mode" = 1 ] && echo "$streamed" || echo "$buffered")
        served=0
        while [ "$served" -lt "$per_mode" ]; do
            line=$(measure "$PID" "$url" "$token" "$mode" "$CONC" "$CHUNK")
            served=$((served + $(cut -f1 <<<"$line")))
            done=$((done + $(cut -f1 <<<"$line")))
            echo "  $done requests (stream=$mode, errors $(cut -f5 <<<"$line")): RSS now/peak MB $(rss "$PID")"
        done
    done
    echo "  after $done requests: RSS now/peak MB $(rss "$PID")"
done
