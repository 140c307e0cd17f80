-- Spend per hour and per (organization, project, user, key, provider, model), kept by the
-- ledger in the same transaction as the cost records it sums (the same table as the
-- SQLite set). `id` is derived from the grouping columns.
CREATE TABLE ai_spend_hourly (
    id              UUID PRIMARY KEY,
    hour_start      TIMESTAMPTZ NOT NULL,
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
CREATE INDEX ai_spend_hourly_org_time ON ai_spend_hourly (organization_id, hour_start);
CREATE INDEX ai_spend_hourly_project_time ON ai_spend_hourly (project_id, hour_start);
CREATE INDEX ai_spend_hourly_user_time ON ai_spend_hourly (user_id, hour_start);
CREATE INDEX ai_spend_hourly_key_time ON ai_spend_hourly (api_key_id, hour_start);
CREATE INDEX ai_spend_hourly_time ON ai_spend_hourly (hour_start);

-- Whether ai_spend_hourly holds every cost record (filled by tollgate before it serves
-- when the database already had records).
CREATE TABLE ai_spend_hourly_state (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    filled BOOLEAN NOT NULL
);
INSERT INTO ai_spend_hourly_state (id, filled)
SELECT 1, NOT EXISTS (SELECT 1 FROM ai_cost_records);
