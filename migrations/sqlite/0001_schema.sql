-- tollgate schema, SQLite flavour. Timestamps are fixed-width UTC text
-- ('YYYY-MM-DDTHH:MM:SS.ffffffZ') so text order is time order and range predicates use
-- indexes; money is exact decimal text (summed in Rust with rust_decimal, never REAL);
-- ids are UUID text. Every reference is an enforced foreign key (foreign_keys=ON on every
-- connection): configuration children cascade with their owner, spend history RESTRICTs.

CREATE TABLE organizations (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    archived_at TEXT
);

CREATE TABLE projects (
    id              TEXT PRIMARY KEY NOT NULL,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    archived_at     TEXT,
    UNIQUE (organization_id, name),
    -- target of api_keys' composite key: a key's project is in the key's organization
    UNIQUE (id, organization_id)
);

CREATE TABLE users (
    id              TEXT PRIMARY KEY NOT NULL,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    external_id     TEXT NOT NULL,
    email           TEXT,
    created_at      TEXT NOT NULL,
    archived_at     TEXT,
    UNIQUE (organization_id, external_id),
    UNIQUE (id, organization_id)
);

CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY NOT NULL,
    organization_id TEXT NOT NULL,
    project_id      TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    name            TEXT,
    key_hash        TEXT NOT NULL UNIQUE,
    prefix          TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    expires_at      TEXT,
    revoked_at      TEXT,
    FOREIGN KEY (project_id, organization_id) REFERENCES projects (id, organization_id) ON DELETE CASCADE,
    FOREIGN KEY (user_id, organization_id) REFERENCES users (id, organization_id) ON DELETE CASCADE
);
CREATE INDEX api_keys_user ON api_keys (user_id, organization_id);
CREATE INDEX api_keys_project ON api_keys (project_id, organization_id);

-- Budgets, one table per level. period: UTC calendar windows, weeks start on Monday.
CREATE TABLE ai_organization_budgets (
    id              TEXT PRIMARY KEY NOT NULL,
    organization_id TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    limit_usd       TEXT NOT NULL,
    period          TEXT NOT NULL CHECK (period IN ('daily', 'weekly', 'monthly', 'total')),
    hard            INTEGER NOT NULL CHECK (hard IN (0, 1)),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);
CREATE INDEX ai_organization_budgets_scope ON ai_organization_budgets (organization_id);

CREATE TABLE ai_project_budgets (
    id          TEXT PRIMARY KEY NOT NULL,
    project_id  TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    limit_usd   TEXT NOT NULL,
    period      TEXT NOT NULL CHECK (period IN ('daily', 'weekly', 'monthly', 'total')),
    hard        INTEGER NOT NULL CHECK (hard IN (0, 1)),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX ai_project_budgets_scope ON ai_project_budgets (project_id);

CREATE TABLE ai_user_budgets (
    id          TEXT PRIMARY KEY NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    limit_usd   TEXT NOT NULL,
    period      TEXT NOT NULL CHECK (period IN ('daily', 'weekly', 'monthly', 'total')),
    hard        INTEGER NOT NULL CHECK (hard IN (0, 1)),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX ai_user_budgets_scope ON ai_user_budgets (user_id);

-- An alert config belongs to exactly one budget of one of the three tables.
CREATE TABLE ai_budget_alert_configs (
    id                     TEXT PRIMARY KEY NOT NULL,
    organization_budget_id TEXT REFERENCES ai_organization_budgets (id) ON DELETE CASCADE,
    project_budget_id      TEXT REFERENCES ai_project_budgets (id) ON DELETE CASCADE,
    user_budget_id         TEXT REFERENCES ai_user_budgets (id) ON DELETE CASCADE,
    threshold_percent      INTEGER NOT NULL CHECK (threshold_percent BETWEEN 1 AND 1000),
    webhook_url            TEXT,
    enabled                INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at             TEXT NOT NULL,
    CHECK ((organization_budget_id IS NOT NULL) + (project_budget_id IS NOT NULL)
           + (user_budget_id IS NOT NULL) = 1)
);
CREATE INDEX ai_budget_alert_configs_org ON ai_budget_alert_configs (organization_budget_id);
CREATE INDEX ai_budget_alert_configs_project ON ai_budget_alert_configs (project_budget_id);
CREATE INDEX ai_budget_alert_configs_user ON ai_budget_alert_configs (user_budget_id);

-- One row per config per window: the unique key is what makes an alert fire once,
-- also with several replicas.
CREATE TABLE ai_budget_alerts (
    id                TEXT PRIMARY KEY NOT NULL,
    alert_config_id   TEXT NOT NULL REFERENCES ai_budget_alert_configs (id) ON DELETE CASCADE,
    window_start      TEXT NOT NULL,
    threshold_percent INTEGER NOT NULL,
    limit_usd         TEXT NOT NULL,
    spent_usd         TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    delivery_status   TEXT NOT NULL CHECK (delivery_status IN ('pending', 'delivered', 'failed', 'no_webhook')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    last_error        TEXT,
    delivered_at      TEXT,
    UNIQUE (alert_config_id, window_start)
);
CREATE INDEX ai_budget_alerts_pending ON ai_budget_alerts (delivery_status, created_at);

-- The ledger. Never cascades: deleting an owner with history fails; archive instead.
CREATE TABLE ai_cost_records (
    id                  TEXT PRIMARY KEY NOT NULL,
    request_id          TEXT NOT NULL UNIQUE,
    created_at          TEXT NOT NULL,
    organization_id     TEXT NOT NULL REFERENCES organizations (id) ON DELETE RESTRICT,
    project_id          TEXT NOT NULL REFERENCES projects (id) ON DELETE RESTRICT,
    user_id             TEXT NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    api_key_id          TEXT REFERENCES api_keys (id) ON DELETE RESTRICT,
    provider            TEXT NOT NULL,
    model               TEXT,
    endpoint            TEXT NOT NULL,
    input_tokens        INTEGER,
    cached_input_tokens INTEGER,
    cache_write_tokens  INTEGER,
    output_tokens       INTEGER,
    reasoning_tokens    INTEGER,
    cost_usd            TEXT NOT NULL,
    status_code         INTEGER NOT NULL,
    latency_ms          INTEGER NOT NULL,
    streamed            INTEGER NOT NULL CHECK (streamed IN (0, 1)),
    usage_source        TEXT NOT NULL CHECK (usage_source IN ('reported', 'partial', 'estimated', 'none')),
    priced              INTEGER NOT NULL CHECK (priced IN (0, 1))
);
-- Reports filter by one scope and a time range; the global range uses created_at alone.
CREATE INDEX ai_cost_records_org_time ON ai_cost_records (organization_id, created_at);
CREATE INDEX ai_cost_records_project_time ON ai_cost_records (project_id, created_at);
CREATE INDEX ai_cost_records_user_time ON ai_cost_records (user_id, created_at);
CREATE INDEX ai_cost_records_key_time ON ai_cost_records (api_key_id, created_at);
CREATE INDEX ai_cost_records_time ON ai_cost_records (created_at);

-- Spend per scope and calendar window, updated in the same transaction as the cost
-- records it sums, so budgets read one row instead of scanning the ledger.
CREATE TABLE ai_spend_windows (
    scope           TEXT NOT NULL CHECK (scope IN ('organization', 'project', 'user')),
    organization_id TEXT REFERENCES organizations (id) ON DELETE RESTRICT,
    project_id      TEXT REFERENCES projects (id) ON DELETE RESTRICT,
    user_id         TEXT REFERENCES users (id) ON DELETE RESTRICT,
    scope_id        TEXT NOT NULL GENERATED ALWAYS AS (coalesce(user_id, project_id, organization_id)) STORED,
    period          TEXT NOT NULL CHECK (period IN ('daily', 'weekly', 'monthly', 'total')),
    window_start    TEXT NOT NULL,
    spent_usd       TEXT NOT NULL,
    requests        INTEGER NOT NULL,
    updated_at      TEXT NOT NULL,
    CHECK ((scope = 'organization' AND organization_id IS NOT NULL AND project_id IS NULL AND user_id IS NULL)
        OR (scope = 'project' AND project_id IS NOT NULL AND organization_id IS NULL AND user_id IS NULL)
        OR (scope = 'user' AND user_id IS NOT NULL AND organization_id IS NULL AND project_id IS NULL)),
    UNIQUE (scope_id, period, window_start)
);
CREATE INDEX ai_spend_windows_org ON ai_spend_windows (organization_id);
CREATE INDEX ai_spend_windows_project ON ai_spend_windows (project_id);
CREATE INDEX ai_spend_windows_user ON ai_spend_windows (user_id);

-- Bumped by every admin write (API or CLI). A running server polls it to invalidate its
-- caches when another process (the CLI) changed identities or budgets.
CREATE TABLE admin_changes (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO admin_changes (id, version) VALUES (1, 0);
