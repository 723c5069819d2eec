#!/usr/bin/env sh
# Tokenomics end to end with no API key: start the proxy, issue a wrapper token bound to the
# built-in mock provider, send an OpenAI-style chat completion through it (buffered and
# streamed), and show what the proxy accounted. Everything lives in ./.tokenomics-quickstart.
set -eu
cd "$(dirname "$0")/.."
PYZ=${PYZ:-./tokenomics.pyz}
DATA=${DATA:-./.tokenomics-quickstart}
PORT=${PORT:-18080}
export TOKENOMICS_DIR="$DATA" TOKENOMICS_SERVER_HTTP_PORT="$PORT" TOKENOMICS_SERVER_TLS_ENABLED=false
export TOKENOMICS_HASH_KEY="${TOKENOMICS_HASH_KEY:-quickstart-only-hash-key}"

TOKEN=$("$PYZ" token create --json \
    --policy '{"providers":{"mock":[{"base_key_env":"NO_KEY_NEEDED"}]},"max_tokens":10000,"rate_limit":{"rules":[{"requests":60,"window":"1m"}]}}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
"$PYZ" serve 2>"$DATA/serve.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done

echo "== a chat completion through the proxy (model mock-gpt, answered by the built-in mock):"
curl -s "http://127.0.0.1:$PORT/v1/chat/completions" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' \
    -d '{"model":"mock-gpt","messages":[{"role":"user","content":"Hello from the quick start"}]}'
echo
echo "== the same, streamed:"
curl -sN "http://127.0.0.1:$PORT/v1/chat/completions" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' \
    -d '{"model":"mock-gpt","stream":true,"messages":[{"role":"user","content":"Hello again"}]}' | head -c 400
echo
echo "== what the proxy accounted (GET /stats):"
curl -s "http://127.0.0.1:$PORT/stats"
echo
