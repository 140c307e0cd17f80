// OpenAI chat completions through tollgate with the official `openai` npm SDK.
//
// Shows: the only change from calling OpenAI directly is `baseURL` (tollgate's proxy
// address + /v1) and `apiKey` (your tollgate key, tg_...). Streaming works unchanged and
// is metered too. `.withResponse()` exposes `x-tollgate-request-id`, the id of the
// call's cost record.
//
// Run (Node 20+; tollgate serving on 127.0.0.1:8080, a key from `tollgate key create`):
//
//     npm ci && npm run build
//     TOLLGATE_KEY=tg_... npm start
//
// TOLLGATE_URL overrides the proxy address.

import OpenAI from "openai";

const baseURL = `${process.env.TOLLGATE_URL ?? "http://127.0.0.1:8080"}/v1`;
const apiKey = process.env.TOLLGATE_KEY;
if (!apiKey) {
  throw new Error("set TOLLGATE_KEY to your tollgate key (tg_...)");
}
const client = new OpenAI({ baseURL, apiKey });
const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [
  { role: "user", content: "Say hello in five words." },
];

const { data: completion, response } = await client.chat.completions
  .create({ model: "gpt-4o-mini", messages, max_tokens: 50 })
  .withResponse();
console.log("answer:", completion.choices[0]?.message.content?.trim());
console.log("usage:", completion.usage?.prompt_tokens, "in,", completion.usage?.completion_tokens, "out");
console.log("request id:", response.headers.get("x-tollgate-request-id"));

const stream = await client.chat.completions.create({ model: "gpt-4o-mini", messages, max_tokens: 50, stream: true });
let streamed = "";
for await (const chunk of stream) {
  streamed += chunk.choices[0]?.delta.content ?? "";
}
console.log("streamed:", streamed.trim());
