-- tollgate schema, PostgreSQL flavour: the same tables, keys and indexes as
-- migrations/sqlite/0001_schema.sql, with native types (UUID, TIMESTAMPTZ, exact NUMERIC
-- money, BOOLEAN). Every reference is an enforced foreign key: configuration children
-- cascade with their owner, spend history RESTRICTs.

CREATE TABLE organizations (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL,
    archived_at TIMESTAMPTZ
);

CREATE TABLE projects (
    id              UUID PRIMARY KEY,
    organization_id UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    archived_at     TIMESTAMPTZ,
    UNIQUE (organization_id, name),
    UNIQUE (id, organization_id)
);

CREATE TABLE users (
    id              UUID PRIMARY KEY,
    organization_id UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    external_id     TEXT NOT NULL,
    email           TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    archived_at     TIMESTAMPTZ,
    UNIQUE (organization_id, external_id),
    UNIQUE (id, organization_id)
);

CREATE TABLE api_keys (
    id              UUID PRIMARY KEY,
    organization_id UUID NOT NULL,
    project_id      UUID NOT NULL,
    user_id         UUID NOT NULL,
    name            TEXT,
    key_hash        TEXT NOT NULL UNIQUE,
    prefix          TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ,
    revoked_at      TIMESTAMPTZ,
    FOREIGN KEY (project_id, organization_id) REFERENCES projects (id, organization_id) ON DELETE CASCADE,
    FOREIGN KEY (user_id, organization_id) REFERENCES users (id, organization_id) ON DELETE CASCADE
);
CREATE INDEX api_keys_user ON api_keys (user_id, organization_id);
CREATE INDEX api_keys_project ON api_keys (project_id, organization_id);

CREATE TABLE ai_organization_budgets (
    id              UUID PRIMARY KEY,
    organization_id UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    limit_usd       NUMERIC NOT NULL CHECK (limit_usd > 0),
    period          TEXT NOT NULL CHECK (period IN ('daily', 'weekly', 'monthly', 'total')),
    hard            BOOLEAN NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX ai_organization_budgets_scope ON ai_organization_budgets (organization_id);

CREATE TABLE ai_project_budgets (
    id          UUID PRIMARY KEY,
    project_id  UUID NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    limit_usd   NUMERIC NOT NULL CHECK (limit_usd > 0),
    period      TEXT NOT NULL CHECK (period IN ('daily', 'weekly', 'monthly', 'total')),
    hard        BOOLEAN NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX ai_project_budgets_scope ON ai_project_budgets (project_id);

CREATE TABLE ai_user_budgets (
    id          UUID PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    limit_usd   NUMERIC NOT NULL CHECK (limit_usd > 0),
    period      TEXT NOT NULL CHECK (period IN ('daily', 'weekly', 'monthly', 'total')),
    hard        BOOLEAN NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX ai_user_budgets_scope ON ai_user_budgets (user_id);

CREATE TABLE ai_budget_alert_configs (
    id                     UUID PRIMARY KEY,
    organization_budget_id UUID REFERENCES ai_organization_budgets (id) ON DELETE CASCADE,
    project_budget_id      UUID REFERENCES ai_project_budgets (id) ON DELETE CASCADE,
    user_budget_id         UUID REFERENCES ai_user_budgets (id) ON DELETE CASCADE,
    threshold_percent      INTEGER NOT NULL CHECK (threshold_percent BETWEEN 1 AND 1000),
    webhook_url            TEXT,
    enabled                BOOLEAN NOT NULL DEFAULT TRUE,
    created_at             TIMESTAMPTZ NOT NULL,
    CHECK ((organization_budget_id IS NOT NULL)::int + (project_budget_id IS NOT NULL)::int
           + (user_budget_id IS NOT NULL)::int = 1)
);
CREATE INDEX ai_budget_alert_configs_org ON ai_budget_alert_configs (organization_budget_id);
CREATE INDEX ai_budget_alert_configs_project ON ai_budget_alert_configs (project_budget_id);
CREATE INDEX ai_budget_alert_configs_user ON ai_budget_alert_configs (user_budget_id);

CREATE TABLE ai_budget_alerts (
    id                UUID PRIMARY KEY,
    alert_config_id   UUID NOT NULL REFERENCES ai_budget_alert_configs (id) ON DELETE CASCADE,
    window_start      TIMESTAMPTZ NOT NULL,
    threshold_percent INTEGER NOT NULL,
    limit_usd         NUMERIC NOT NULL,
    spent_usd         NUMERIC NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    delivery_status   TEXT NOT NULL CHECK (delivery_status IN ('pending', 'delivered', 'failed', 'no_webhook')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    last_error        TEXT,
    delivered_at      TIMESTAMPTZ,
    UNIQUE (alert_config_id, window_start)
);
CREATE INDEX ai_budget_alerts_pending ON ai_budget_alerts (delivery_status, created_at);

CREATE TABLE ai_cost_records (
    id                  UUID PRIMARY KEY,
    request_id          UUID NOT NULL UNIQUE,
    created_at          TIMESTAMPTZ NOT NULL,
    organization_id     UUID NOT NULL REFERENCES organizations (id) ON DELETE RESTRICT,
    project_id          UUID NOT NULL REFERENCES projects (id) ON DELETE RESTRICT,
    user_id             UUID NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    api_key_id          UUID REFERENCES api_keys (id) ON DELETE RESTRICT,
    provider            TEXT NOT NULL,
    model               TEXT,
    endpoint            TEXT NOT NULL,
    input_tokens        BIGINT,
    cached_input_tokens BIGINT,
    cache_write_tokens  BIGINT,
    output_tokens       BIGINT,
    reasoning_tokens    BIGINT,
    cost_usd            NUMERIC NOT NULL,
    status_code         INTEGER NOT NULL,
    latency_ms          BIGINT NOT NULL,
    streamed            BOOLEAN NOT NULL,
    usage_source        TEXT NOT NULL CHECK (usage_source IN ('reported', 'partial', 'estimated', 'none')),
    priced              BOOLEAN NOT NULL
);
CREATE INDEX ai_cost_records_org_time ON ai_cost_records (organization_id, created_at);
CREATE INDEX ai_cost_records_project_time ON ai_cost_records (project_id, created_at);
CREATE INDEX ai_cost_records_user_time ON ai_cost_records (user_id, created_at);
CREATE INDEX ai_cost_records_key_time ON ai_cost_records (api_key_id, created_at);
CREATE INDEX ai_cost_records_time ON ai_cost_records (created_at);

CREATE TABLE ai_spend_windows (
    scope           TEXT NOT NULL CHECK (scope IN ('organization', 'project', 'user')),
    organization_id UUID REFERENCES organizations (id) ON DELETE RESTRICT,
    project_id      UUID REFERENCES projects (id) ON DELETE RESTRICT,
    user_id         UUID REFERENCES users (id) ON DELETE RESTRICT,
    scope_id        UUID NOT NULL GENERATED ALWAYS AS (coalesce(user_id, project_id, organization_id)) STORED,
    period          TEXT NOT NULL CHECK (period IN ('daily', 'weekly', 'monthly', 'total')),
    window_start    TIMESTAMPTZ NOT NULL,
    spent_usd       NUMERIC NOT NULL,
    requests        BIGINT NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    CHECK ((scope = 'organization' AND organization_id IS NOT NULL AND project_id IS NULL AND user_id IS NULL)
        OR (scope = 'project' AND project_id IS NOT NULL AND organization_id IS NULL AND user_id IS NULL)
        OR (scope = 'user' AND user_id IS NOT NULL AND organization_id IS NULL AND project_id IS NULL)),
    PRIMARY KEY (scope_id, period, window_start)
);
CREATE INDEX ai_spend_windows_org ON ai_spend_windows (organization_id);
CREATE INDEX ai_spend_windows_project ON ai_spend_windows (project_id);
CREATE INDEX ai_spend_windows_user ON ai_spend_windows (user_id);

CREATE TABLE admin_changes (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO admin_changes (id, version) VALUES (1, 0);
