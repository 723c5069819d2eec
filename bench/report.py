"""Turn the BENCH lines of bench/run.sh into a table with proxy/direct ratios."""

import json
import re
import sys

rows = {}
for line in sys.stdin:
    match = re.match(r"(direct|proxy) (buffered|streamed) c=(\d+) (\{.*\})", line.strip())
    if match:
        who, mode, conc, data = match.groups()
        rows[(who, mode, int(conc))] = json.loads(data)

print(
    "| mode | concurrency | direct req/s | proxy req/s | direct p50 | proxy p50 | added p50 "
    "| proxy p99 | errors |"
)
print("|---|---|---|---|---|---|---|---|---|")
for mode in ("buffered", "streamed"):
    for conc in (1, 64):
        direct, proxy = rows.get(("direct", mode, conc)), rows.get(("proxy", mode, conc))
        if not direct or not proxy:
            continue
        rps = lambda r: r["requests"] / (r["duration_us"] / 1e6)  # noqa: E731
        added = (proxy["p50_us"] - direct["p50_us"]) / 1000
        errors = proxy["errors"] + proxy["non2xx"]
        print(
            f"| {mode} | {conc} | {rps(direct):,.0f} | {rps(proxy):,.0f} "
            f"| {direct['p50_us'] / 1000:.2f} ms | {proxy['p50_us'] / 1000:.2f} ms "
            f"| {added:+.2f} ms | {proxy['p99_us'] / 1000:.2f} ms | {errors} |"
        )
