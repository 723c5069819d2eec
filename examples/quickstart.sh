#!/usr/bin/env sh
# Tokenomics end to end with no API key: issue a wrapper token bound to the built-in mock
# provider, run a client through `tokenomics run` (an in-process proxy on a free loopback port,
# the client pointed at it through OPENAI_BASE_URL / OPENAI_API_KEY), then show what the session
# ledger accounted. Everything lives in ./.tokenomics-quickstart.
set -eu
cd "$(dirname "$0")/.."
PYZ=${PYZ:-./tokenomics.pyz}
export TOKENOMICS_DIR="${TOKENOMICS_DIR:-./.tokenomics-quickstart}"
export TOKENOMICS_HASH_KEY="${TOKENOMICS_HASH_KEY:-quickstart-only-hash-key}"

echo "== a wrapper token bound to the built-in mock provider (no real key needed):"
TOKENOMICS_KEY=$("$PYZ" token create --json \
    --policy '{"default_provider":"mock","max_tokens":10000,"rate_limit":{"rules":[{"requests":60,"window":"1m"}]}}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
export TOKENOMICS_KEY
echo "   ${TOKENOMICS_KEY%"${TOKENOMICS_KEY#????????}"}..."

echo "== a plain OpenAI-style client, run through the proxy:"
"$PYZ" run --print-env -- python3 examples/hello.py

echo "== what the session ledger recorded:"
"$PYZ" ledger summary
