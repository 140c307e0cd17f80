-- The billed dimensions beyond tokens (SPEC §6): the service tier and inference geo the
-- response reported, its audio input/output tokens (parts of input_tokens / output_tokens)
-- and its server-side web search / fetch calls. NULL where the response reported none, as
-- in every record written before this migration. Adding nullable columns without a default
-- rewrites no rows.
ALTER TABLE ai_cost_records ADD COLUMN service_tier TEXT;
ALTER TABLE ai_cost_records ADD COLUMN inference_geo TEXT;
ALTER TABLE ai_cost_records ADD COLUMN audio_input_tokens INTEGER;
ALTER TABLE ai_cost_records ADD COLUMN audio_output_tokens INTEGER;
ALTER TABLE ai_cost_records ADD COLUMN web_search_requests INTEGER;
ALTER TABLE ai_cost_records ADD COLUMN web_fetch_requests INTEGER;
