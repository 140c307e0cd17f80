"""An app calling a tollgate sidecar (`auth.mode = "headers"`, see ../sidecar/).

Shows: next to a trusted sidecar the app needs no tollgate key. It says who is spending
with two headers, `x-tollgate-user` (a user's id or external_id) and
`x-tollgate-project` (a project's id); tollgate never forwards them upstream. The
provider key is the sidecar's (its config or environment); when the sidecar has none,
the key the app sends passes through.

Run (a sidecar on 127.0.0.1:8080; the user and project exist in its database):

    pip install -r requirements.txt
    TOLLGATE_USER=alice TOLLGATE_PROJECT=<project id> python sidecar_headers.py

TOLLGATE_URL overrides the sidecar's address; OPENAI_API_KEY is sent when set.
"""

import os

from openai import OpenAI

base_url = os.environ.get("TOLLGATE_URL", "http://127.0.0.1:8080")
client = OpenAI(
    base_url=f"{base_url}/v1",
    # The SDK insists on a key; the sidecar replaces it with its own when it has one.
    api_key=os.environ.get("OPENAI_API_KEY", "unused-behind-the-sidecar"),
    default_headers={
        "x-tollgate-user": os.environ["TOLLGATE_USER"],
        "x-tollgate-project": os.environ["TOLLGATE_PROJECT"],
    },
)

raw = client.chat.completions.with_raw_response.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello in five words."}], max_tokens=50
)
print("answer:", raw.parse().choices[0].message.content.strip())
print("request id:", raw.headers.get("x-tollgate-request-id"))
