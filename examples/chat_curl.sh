#!/usr/bin/env bash
# Chat with a running Kiln server (start one with: npx -y deno@2.9.6 task serve).
set -euo pipefail
BASE="${KILN_URL:-http://127.0.0.1:8000}"
curl -sS "$BASE/v1/chat/completions" \
  -H "content-type: application/json" \
  ${KILN_API_KEY:+-H "authorization: Bearer $KILN_API_KEY"} \
  -d '{"model": "example", "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 32, "temperature": 0}'
echo
# Streaming, as server-sent events:
curl -sSN "$BASE/v1/chat/completions" \
  -H "content-type: application/json" \
  ${KILN_API_KEY:+-H "authorization: Bearer $KILN_API_KEY"} \
  -d '{"model": "example", "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 16, "stream": true}'
