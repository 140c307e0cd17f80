//! Gemini generateContent / streamGenerateContent / embedContent: `usageMetadata` mapped onto
//! [`Usage`].
//!
//! Every stream chunk carries a snapshot of running totals, so the last snapshot wins and nothing
//! is summed. `candidatesTokenCount` excludes thoughts and `promptTokenCount` excludes tool-use
//! prompt tokens, so both are added in to reach the inclusive totals. The `AUDIO` entries of
//! `promptTokensDetails` (a per-modality split of `promptTokenCount`) are the audio input tokens.

use serde::Deserialize;

use super::json::{parse, Count, Fold, Folded, List, Maybe, Present, Str, Text};
use super::sse::Event;
use super::{Tally, Usage};

/// Stateless decoder: each snapshot replaces the previous one wholesale.
#[derive(Debug, Default)]
pub struct Decoder;

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Chunk {
    candidates: List<Candidate>,
    #[serde(alias = "usage_metadata")]
    usage_metadata: Maybe<UsageMetadata>,
    #[serde(alias = "model_version")]
    model_version: Text,
    error: Present,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Candidate {
    #[serde(alias = "finish_reason")]
    finish_reason: Text,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(alias = "prompt_token_count")]
    prompt_token_count: Count,
    #[serde(alias = "candidates_token_count")]
    candidates_token_count: Count,
    #[serde(alias = "cached_content_token_count")]
    cached_content_token_count: Count,
    #[serde(alias = "thoughts_token_count")]
    thoughts_token_count: Count,
    #[serde(alias = "tool_use_prompt_token_count")]
    tool_use_prompt_token_count: Count,
    #[serde(alias = "total_token_count")]
    total_token_count: Count,
    #[serde(alias = "prompt_tokens_details")]
    prompt_tokens_details: Folded<AudioTokens>,
}

/// The sum of the `AUDIO` entries of a per-modality token list.
#[derive(Debug, Default)]
struct AudioTokens(u64);

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ModalityCount<'a> {
    #[serde(borrow)]
    modality: Str<'a>,
    #[serde(alias = "token_count")]
    token_count: Count,
}

impl<'de> Fold<'de> for AudioTokens {
    type Item = ModalityCount<'de>;

    fn add(&mut self, item: ModalityCount<'de>) {
        if item.modality.is("AUDIO") {
            self.0 = self.0.saturating_add(item.token_count.0.unwrap_or(0));
        }
    }
}

impl UsageMetadata {
    fn normalize(&self) -> Option<Usage> {
        let counts = [
            self.prompt_token_count,
            self.candidates_token_count,
            self.cached_content_token_count,
            self.thoughts_token_count,
            self.tool_use_prompt_token_count,
            self.total_token_count,
        ];
        if counts.iter().all(|c| c.0.is_none()) {
            return None;
        }
        let n = |c: Count| c.0.unwrap_or(0);
        let thoughts = n(self.thoughts_token_count);
        Some(Usage {
            // promptTokenCount already includes cachedContentTokenCount.
            input_tokens: n(self.prompt_token_count).saturating_add(n(self.tool_use_prompt_token_count)),
            cached_input_tokens: n(self.cached_content_token_count),
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
            output_tokens: n(self.candidates_token_count).saturating_add(thoughts),
            reasoning_tokens: thoughts,
            audio_input_tokens: self.prompt_tokens_details.0.as_ref().map(|a| a.0),
            ..Usage::default()
        })
    }
}

impl Decoder {
    pub(super) fn event(&mut self, event: Event<'_>, tally: &mut Tally) {
        if event.name == "error" {
            tally.upstream_error = true;
        }
        if let Some(chunk) = parse::<Chunk>(event.data.as_bytes()) {
            take_chunk(chunk, tally, false);
        }
    }

    pub(super) fn body(&mut self, body: &[u8], tally: &mut Tally) {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'[') {
            // streamGenerateContent without `alt=sse` answers with one JSON array of chunks.
            if let Some(chunks) = parse::<List<Chunk>>(body) {
                for chunk in chunks.0 {
                    take_chunk(chunk, tally, false);
                }
            }
        } else if let Some(chunk) = parse::<Chunk>(body) {
            take_chunk(chunk, tally, true);
        }
    }
}

/// Folds one response object in; `whole` marks a complete non-streamed body.
fn take_chunk(chunk: Chunk, tally: &mut Tally, whole: bool) {
    if chunk.error.is_some() {
        tally.upstream_error = true;
    }
    tally.offer_model(chunk.model_version);
    if let Some(usage) = chunk.usage_metadata.0.as_ref().and_then(UsageMetadata::normalize) {
        tally.usage = Some(usage);
        // A whole body's usage is final; a stream's is final on the chunk that ends generation.
        if whole {
            tally.complete = true;
        }
    }
    let finished =
        chunk.candidates.0.iter().any(|c| c.finish_reason.0.as_deref().is_some_and(|r| !r.is_empty()));
    if finished {
        tally.complete = true;
    }
}
