-- Spend per hour and per (organization, project, user, key, provider, model), kept by the
-- ledger in the same transaction as the cost records it sums, so a report over a month
-- reads hours instead of every record. `id` is derived from the grouping columns (the
-- key and model may be NULL, which a UNIQUE constraint would not match).
CREATE TABLE ai_spend_hourly (
    id              TEXT PRIMARY KEY NOT NULL,
    hour_start      TEXT NOT NULL,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE RESTRICT,
    project_id      TEXT NOT NULL REFERENCES projects (id) ON DELETE RESTRICT,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    api_key_id      TEXT REFERENCES api_keys (id) ON DELETE RESTRICT,
    provider        TEXT NOT NULL,
    model           TEXT,
    requests        INTEGER NOT NULL,
    input_tokens    INTEGER NOT NULL,
    output_tokens   INTEGER NOT NULL,
    cost_usd        TEXT NOT NULL
);
CREATE INDEX ai_spend_hourly_org_time ON ai_spend_hourly (organization_id, hour_start);
CREATE INDEX ai_spend_hourly_project_time ON ai_spend_hourly (project_id, hour_start);
CREATE INDEX ai_spend_hourly_user_time ON ai_spend_hourly (user_id, hour_start);
CREATE INDEX ai_spend_hourly_key_time ON ai_spend_hourly (api_key_id, hour_start);
CREATE INDEX ai_spend_hourly_time ON ai_spend_hourly (hour_start);

-- Whether ai_spend_hourly holds every cost record. A database that already had records
-- when this migration ran is filled by tollgate (in Rust: SQLite cannot add decimal text
-- exactly) before it serves; until then reports read the records.
CREATE TABLE ai_spend_hourly_state (
    id     INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    filled INTEGER NOT NULL CHECK (filled IN (0, 1))
);
INSERT INTO ai_spend_hourly_state (id, filled)
SELECT 1, CASE WHEN EXISTS (SELECT 1 FROM ai_cost_records) THEN 0 ELSE 1 END;
