#!/usr/bin/env bash
# Where the proxy's time goes, layer by layer: the same wrk load (bench/post.lua, buffered) against
#
#   trivial      our HTTP/1.1 server + an ASGI app that answers the completion itself
#   passthrough  our server + tokenomics' upstream client to the nginx upstream, no pipeline
#   proxy        the full pipeline (this checkout's src/, the policy of bench/run.sh)
#
# all pinned to CPU 0 (nginx and wrk on CPU 1), in interleaved rounds; then the upstream client
# alone (no server) at the same concurrency. Differences between rows are what each layer adds.
#
# Environment: DURATION (default 5), CONC (64), ROUNDS (3).
source "$(dirname "$0")/common.sh"
DURATION=${DURATION:-5}
CONC=${CONC:-64}
ROUNDS=${ROUNDS:-3}
export PYTHONPATH=$PWD/src

start_nginx
upstream="http://127.0.0.1:$NGINX_PORT/v1/chat/completions"
declare -A pid url token
for kind in trivial passthrough; do
    port=$(free_port)
    args=("$kind" "$port")
    [ "$kind" = passthrough ] && args+=("$upstream")
    taskset -c 0 .venv/bin/python bench/floors.py "${args[@]}" >"$work/$kind.log" 2>&1 &
    server_pids+=($!)
    pid[$kind]=$! url[$kind]="http://127.0.0.1:$port/v1/chat/completions" token[$kind]=""
    wait_for "http://127.0.0.1:$port/"
done
start_proxy "$PWD/src" proxy 0
pid[proxy]=$PID url[proxy]="http://127.0.0.1:$PORT/v1/chat/completions" token[proxy]=$TOKEN

kinds=(trivial passthrough proxy)
for kind in "${kinds[@]}"; do measure "${pid[$kind]}" "${url[$kind]}" "${token[$kind]}" 0 4 2 >/dev/null; done
for round in $(seq "$ROUNDS"); do
    for kind in "${kinds[@]}"; do
        printf '%s\t%s\t%s\n' "$kind" "$round" \
            "$(measure "${pid[$kind]}" "${url[$kind]}" "${token[$kind]}" 0 "$CONC" "$DURATION")"
    done
done > "$work/runs.tsv"
echo "concurrency $CONC, $ROUNDS rounds of ${DURATION}s; CPU is the server process's"
summary "$work/runs.tsv" "${kinds[@]}"
for round in $(seq "$ROUNDS"); do
    taskset -c 0 .venv/bin/python bench/floors.py client "$upstream" "$CONC" "$DURATION"
done | .venv/bin/python -c '
import statistics, sys
rows = [line.split() for line in sys.stdin if line.strip()]
rps, cpu = [float(r[0]) for r in rows], [float(r[1]) for r in rows]
print(f"  upstream client alone: {statistics.median(cpu):.3f} ({min(cpu):.3f}) ms CPU/req, "
      f"{statistics.median(rps):.0f} ({max(rps):.0f}) req/s")'
