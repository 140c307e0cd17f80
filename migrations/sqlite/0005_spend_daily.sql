-- Spend per UTC day and per (organization, project, user, key, provider, model), kept by
-- the ledger in the same transaction as the cost records it sums, beside the hourly
-- rollup: a report over whole days reads this (a month of a busy organization is a few
-- thousand rows, not hundreds of thousands). Same columns as ai_spend_hourly; `id` is
-- derived from the grouping columns.
CREATE TABLE ai_spend_daily (
    id              TEXT PRIMARY KEY NOT NULL,
    day_start       TEXT NOT NULL,
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
CREATE INDEX ai_spend_daily_org_time ON ai_spend_daily (organization_id, day_start);
CREATE INDEX ai_spend_daily_project_time ON ai_spend_daily (project_id, day_start);
CREATE INDEX ai_spend_daily_user_time ON ai_spend_daily (user_id, day_start);
CREATE INDEX ai_spend_daily_key_time ON ai_spend_daily (api_key_id, day_start);
CREATE INDEX ai_spend_daily_time ON ai_spend_daily (day_start);

-- Whether ai_spend_daily holds every cost record. A database that already had records
-- when this migration ran is filled by tollgate (in Rust: SQLite cannot add decimal text
-- exactly) before it serves.
CREATE TABLE ai_spend_daily_state (
    id     INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    filled INTEGER NOT NULL CHECK (filled IN (0, 1))
);
INSERT INTO ai_spend_daily_state (id, filled)
SELECT 1, CASE WHEN EXISTS (SELECT 1 FROM ai_cost_records) THEN 0 ELSE 1 END;
