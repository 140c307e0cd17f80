"""Anthropic messages through tollgate with the official `anthropic` SDK.

Shows: `base_url` is tollgate's proxy address + /anthropic and `api_key` your tollgate
key (tg_...); the SDK sends it as usual and tollgate swaps in the real Anthropic key.
Plain and streamed messages are both metered from Anthropic's own usage report.

Run (tollgate serving on 127.0.0.1:8080, a key from `tollgate key create`):

    pip install -r requirements.txt
    TOLLGATE_KEY=tg_... python anthropic_messages.py

TOLLGATE_URL overrides the proxy address.
"""

import os

from anthropic import Anthropic

base_url = os.environ.get("TOLLGATE_URL", "http://127.0.0.1:8080")
client = Anthropic(base_url=f"{base_url}/anthropic", api_key=os.environ["TOLLGATE_KEY"])
question = [{"role": "user", "content": "Say hello in five words."}]

raw = client.messages.with_raw_response.create(model="claude-sonnet-4-5", max_tokens=100, messages=question)
message = raw.parse()
print("answer:", "".join(block.text for block in message.content if block.type == "text").strip())
print("usage:", message.usage.input_tokens, "in,", message.usage.output_tokens, "out")
print("request id:", raw.headers.get("x-tollgate-request-id"))

with client.messages.stream(model="claude-sonnet-4-5", max_tokens=100, messages=question) as stream:
    streamed = "".join(stream.text_stream)
print("streamed:", streamed.strip())
