#!/usr/bin/env bash
# What a webhook on every event costs: the same tree served twice, without and with
# `events.webhooks: [{url: http://127.0.0.1:$NGINX_PORT/hook}]` (nginx answers 200): two events
# per request here (request.completed, budget.update; rules and limits that fire add more).
#
#   bench/webhooks.sh                       # this checkout's src/
#   bench/webhooks.sh /tmp/ab/before/src    # another tree
#
# Interleaved rounds at concurrency 1 and 64 (`CONCS`): for each proxy in turn, wrk for
# DURATION seconds; then, for the proxy with the webhook, the time until its outbox has no
# pending event (everything delivered: the drain). Per run: requests/s, p50, the serving
# process's CPU per request while wrk runs, the CPU per request of its delivery process(es)
# (its child processes, if any) over the run and the drain, the total (serving + delivery,
# over the run and the drain), and the drain in seconds. The serving process and its children
# are pinned to CPU 0 (common.sh), nginx and wrk to CPU 1.
#
# Environment: DURATION (5), ROUNDS (3), CONCS ("1 64"), DRAIN_LIMIT (120 s); HOLD_DELIVERY=1
# stops the delivery process (SIGSTOP) while wrk runs and lets it go (SIGCONT) for the drain.
# Since the delivery process commits the events (docs/DECISIONS.md, D-event-pipe), a stopped one
# stops answering: after 1 MiB of unanswered batches the serving process appends them itself,
# so HOLD_DELIVERY=1 now measures that fallback, not the usual hand-over.
source "$(dirname "$0")/common.sh"
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-3}
CONCS=${CONCS:-1 64}
DRAIN_LIMIT=${DRAIN_LIMIT:-120}
tree=${1:-$PWD/src}

start_nginx
start_proxy "$tree" plain 0
plain_pid=$PID plain_port=$PORT plain_token=$TOKEN
TOKENOMICS_EVENTS_WEBHOOKS="[{\"url\":\"http://127.0.0.1:$NGINX_PORT/hook\"}]" \
    start_proxy "$tree" hooked 0
hooked_pid=$PID hooked_port=$PORT hooked_token=$TOKEN
db="$work/hooked/tokenomics.db"

ticks() {  # utime + stime of the process, or the sum over the children of $1 with -c
    if [ "$1" = -c ]; then
        local sum=0 child
        for child in $(pgrep -P "$2" || true); do
            sum=$((sum + $(awk '{print $14 + $15}' "/proc/$child/stat" 2>/dev/null || echo 0)))
        done
        echo "$sum"
    else
        awk '{print $14 + $15}' "/proc/$1/stat"
    fi
}
pending() {  # events not yet delivered to the one webhook (every event is wanted)
    .venv/bin/python - "$db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=5)
last = db.execute("SELECT coalesce(max(seq), 0) FROM outbox_events").fetchone()[0]
row = db.execute("SELECT min(cursor) FROM outbox_targets").fetchone()
print(last - (row[0] or 0) if row[0] is not None or last else 0)
PY
}
drain() {  # seconds until nothing is pending (DRAIN_LIMIT at most)
    local start now
    start=$(date +%s.%N)
    while [ "$(pending)" != 0 ]; do
        now=$(date +%s.%N)
        if awk -v a="$start" -v b="$now" -v l="$DRAIN_LIMIT" 'BEGIN {exit !(b - a > l)}'; then
            echo "timeout"; return
        fi
        sleep 0.05
    done
    now=$(date +%s.%N)
    awk -v a="$start" -v b="$now" 'BEGIN {printf "%.2f\n", b - a}'
}
url() { echo "http://127.0.0.1:$1/v1/chat/completions"; }

measure "$plain_pid" "$(url "$plain_port")" "$plain_token" 0 4 2 >/dev/null  # warm-up
measure "$hooked_pid" "$(url "$hooked_port")" "$hooked_token" 0 4 2 >/dev/null
drain >/dev/null

hz=$(getconf CLK_TCK)
printf 'proxy\tconc\tround\trequests\treq/s\tserve_ms/req\tp50_ms\terrors\tdelivery_ms/req\ttotal_ms/req\tdrain_s\n'
for round in $(seq "$ROUNDS"); do
    for conc in $CONCS; do
        line=$(measure "$plain_pid" "$(url "$plain_port")" "$plain_token" 0 "$conc" "$DURATION")
        printf 'without\t%s\t%s\t%s\t0\t%s\t0\n' "$conc" "$round" "$line" \
            "$(echo "$line" | cut -f3)"
        serve0=$(ticks "$hooked_pid") child0=$(ticks -c "$hooked_pid")
        children=$(pgrep -P "$hooked_pid" || true)
        [ "${HOLD_DELIVERY:-0}" = 1 ] && [ -n "$children" ] && kill -STOP $children
        line=$(measure "$hooked_pid" "$(url "$hooked_port")" "$hooked_token" 0 "$conc" "$DURATION")
        [ "${HOLD_DELIVERY:-0}" = 1 ] && [ -n "$children" ] && kill -CONT $children
        seconds=$(drain)
        serve1=$(ticks "$hooked_pid") child1=$(ticks -c "$hooked_pid")
        n=$(echo "$line" | cut -f1)
        awk -v n="$n" -v hz="$hz" -v s="$((serve1 - serve0))" -v c="$((child1 - child0))" \
            -v d="$seconds" -v conc="$conc" -v round="$round" -v line="$line" 'BEGIN {
            if (n < 1) n = 1
            printf "with\t%s\t%s\t%s\t%.3f\t%.3f\t%s\n", conc, round, line,
                c / hz * 1000 / n, (s + c) / hz * 1000 / n, d }'
    done
done | tee "$work/runs.tsv"
echo
.venv/bin/python - "$work/runs.tsv" <<'EOF2'
import statistics, sys
rows = [line.split("\t") for line in open(sys.argv[1]).read().splitlines() if line]
print("median (best) over the rounds")
for conc in sorted({r[1] for r in rows}, key=int):
    for proxy in ("without", "with"):
        mine = [r for r in rows if r[0] == proxy and r[1] == conc]
        col = lambda c: [float(r[c]) for r in mine]  # noqa: E731
        rps, cpu, p50, dcpu, total = col(4), col(5), col(6), col(8), col(9)
        drains = [float(r[10]) for r in mine if r[10] not in ("0", "timeout")]
        drain = f", drain {statistics.median(drains):.2f} ({max(drains):.2f} max) s" if drains else ""
        print(f"  c={conc} {proxy:>7}: {statistics.median(rps):.0f} ({max(rps):.0f}) req/s, "
              f"p50 {statistics.median(p50):.2f} ({min(p50):.2f}) ms, serving "
              f"{statistics.median(cpu):.3f} ({min(cpu):.3f}) ms CPU/req, delivery "
              f"{statistics.median(dcpu):.3f} ({min(dcpu):.3f}), total "
              f"{statistics.median(total):.3f} ({min(total):.3f}){drain}, "
              f"errors {sum(col(7)):.0f}")
EOF2
