"""OpenAI chat completions through tollgate with the official `openai` SDK.

Shows: the only change from calling OpenAI directly is `base_url` (tollgate's proxy
address + /v1) and `api_key` (your tollgate key, tg_...). Streaming works unchanged and
is metered too: tollgate asks OpenAI for the usage chunk and hides it from you. Every
answer carries `x-tollgate-request-id`, the id of its cost record.

Run (tollgate serving on 127.0.0.1:8080, a key from `tollgate key create`):

    pip install -r requirements.txt
    TOLLGATE_KEY=tg_... python openai_chat.py

TOLLGATE_URL overrides the proxy address.
"""

import os

from openai import OpenAI

base_url = os.environ.get("TOLLGATE_URL", "http://127.0.0.1:8080")
client = OpenAI(base_url=f"{base_url}/v1", api_key=os.environ["TOLLGATE_KEY"])
question = [{"role": "user", "content": "Say hello in five words."}]

# with_raw_response gives the headers too; client.chat.completions.create(...) is the
# same call without them.
raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=question, max_tokens=50)
completion = raw.parse()
print("answer:", completion.choices[0].message.content.strip())
print("usage:", completion.usage.prompt_tokens, "in,", completion.usage.completion_tokens, "out")
print("request id:", raw.headers.get("x-tollgate-request-id"))
# Present when a budget applies to your key: what is left of the tightest one.
print("budget remaining:", raw.headers.get("x-tollgate-budget-remaining-usd", "no budget"))

stream = client.chat.completions.create(model="gpt-4o-mini", messages=question, max_tokens=50, stream=True)
streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
print("streamed:", streamed.strip())
