-- Spend per UTC day and per (organization, project, user, key, provider, model), kept by
-- the ledger in the same transaction as the cost records it sums, beside the hourly
-- rollup: a report over whole days reads this (a month of a busy organization is a few
-- thousand rows, not hundreds of thousands). Same columns as ai_spend_hourly (and the
-- same table as the SQLite set); `id` is derived from the grouping columns.
CREATE TABLE ai_spend_daily (
    id              UUID PRIMARY KEY,
    day_start       TIMESTAMPTZ NOT NULL,
    organization_id UUID NOT NULL REFERENCES organizations (id) ON DELETE RESTRICT,
    project_id      UUID NOT NULL REFERENCES projects (id) ON DELETE RESTRICT,
    user_id         UUID NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    api_key_id      UUID REFERENCES api_keys (id) ON DELETE RESTRICT,
    provider        TEXT NOT NULL,
    model           TEXT,
    requests        BIGINT NOT NULL,
    input_tokens    BIGINT NOT NULL,
    output_tokens   BIGINT NOT NULL,
    cost_usd        NUMERIC NOT NULL
);
CREATE INDEX ai_spend_daily_org_time ON ai_spend_daily (organization_id, day_start);
CREATE INDEX ai_spend_daily_project_time ON ai_spend_daily (project_id, day_start);
CREATE INDEX ai_spend_daily_user_time ON ai_spend_daily (user_id, day_start);
CREATE INDEX ai_spend_daily_key_time ON ai_spend_daily (api_key_id, day_start);
CREATE INDEX ai_spend_daily_time ON ai_spend_daily (day_start);

-- Whether ai_spend_daily holds every cost record (filled by tollgate before it serves
-- when the database already had records).
CREATE TABLE ai_spend_daily_state (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    filled BOOLEAN NOT NULL
);
INSERT INTO ai_spend_daily_state (id, filled)
SELECT 1, NOT EXISTS (SELECT 1 FROM ai_cost_records);
