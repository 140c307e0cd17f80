#!/usr/bin/env sh
# Gemini through tollgate with curl: generateContent, then the same as a stream.
#
# Shows: the tollgate key goes where Google's SDKs put theirs (the x-goog-api-key header,
# or ?key= in the URL) and the path is Gemini's own under /gemini. Both answers are
# metered from Gemini's usageMetadata.
#
# Run (tollgate serving on 127.0.0.1:8080, a key from `tollgate key create`):
#
#     TOLLGATE_KEY=tg_... sh gemini.sh
#
# TOLLGATE_URL overrides the proxy address. Each answer is printed as Gemini sent it.
set -eu
: "${TOLLGATE_KEY:?set TOLLGATE_KEY to your tollgate key (tg_...)}"
URL=${TOLLGATE_URL:-http://127.0.0.1:8080}/gemini/v1beta/models/gemini-2.5-flash
BODY='{"contents":[{"role":"user","parts":[{"text":"Say hello in five words."}]}]}'

curl -sS --fail-with-body "$URL:generateContent" \
    -H "x-goog-api-key: $TOLLGATE_KEY" -H 'content-type: application/json' -d "$BODY"
echo

# Streamed as server-sent events; the key may also go in the query string.
curl -sS --fail-with-body -N "$URL:streamGenerateContent?alt=sse&key=$TOLLGATE_KEY" \
    -H 'content-type: application/json' -d "$BODY"
