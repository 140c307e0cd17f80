-- Budget leases and alert delivery claims. Both tables exist on both backends so the
-- schemas stay in step; only PostgreSQL replicas take leases (one SQLite process admits
-- against its own counters).

-- A slice of a spend window's remaining allowance held by one replica. The sum of live
-- leases plus the window's settled spend never exceeds the budget limit when granted.
-- The window row is created (spent 0) before its first lease, so it can be the lock.
CREATE TABLE ai_budget_leases (
    scope_id     TEXT NOT NULL,
    period       TEXT NOT NULL CHECK (period IN ('daily', 'weekly', 'monthly', 'total')),
    window_start TEXT NOT NULL,
    replica_id   TEXT NOT NULL,
    amount_usd   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    PRIMARY KEY (scope_id, period, window_start, replica_id),
    FOREIGN KEY (scope_id, period, window_start)
        REFERENCES ai_spend_windows (scope_id, period, window_start) ON DELETE CASCADE
);
-- Renewal and return work on one replica's leases.
CREATE INDEX ai_budget_leases_replica ON ai_budget_leases (replica_id, expires_at);

-- A replica delivering an alert's webhook holds it until this time; another replica (or
-- a restart) takes over a pending delivery only after the claim ran out.
ALTER TABLE ai_budget_alerts ADD COLUMN claimed_until TEXT;

-- A budget limit is positive (PostgreSQL checks it in the table; SQLite cannot add a
-- CHECK to an existing table). Limits are stored as normalized decimal text, so a
-- positive one has no sign and a non-zero digit; compared as text, never as REAL.
CREATE TRIGGER ai_organization_budgets_positive_insert BEFORE INSERT ON ai_organization_budgets
WHEN NEW.limit_usd LIKE '-%' OR NEW.limit_usd NOT GLOB '*[1-9]*'
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: limit_usd > 0'); END;
CREATE TRIGGER ai_organization_budgets_positive_update BEFORE UPDATE OF limit_usd ON ai_organization_budgets
WHEN NEW.limit_usd LIKE '-%' OR NEW.limit_usd NOT GLOB '*[1-9]*'
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: limit_usd > 0'); END;
CREATE TRIGGER ai_project_budgets_positive_insert BEFORE INSERT ON ai_project_budgets
WHEN NEW.limit_usd LIKE '-%' OR NEW.limit_usd NOT GLOB '*[1-9]*'
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: limit_usd > 0'); END;
CREATE TRIGGER ai_project_budgets_positive_update BEFORE UPDATE OF limit_usd ON ai_project_budgets
WHEN NEW.limit_usd LIKE '-%' OR NEW.limit_usd NOT GLOB '*[1-9]*'
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: limit_usd > 0'); END;
CREATE TRIGGER ai_user_budgets_positive_insert BEFORE INSERT ON ai_user_budgets
WHEN NEW.limit_usd LIKE '-%' OR NEW.limit_usd NOT GLOB '*[1-9]*'
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: limit_usd > 0'); END;
CREATE TRIGGER ai_user_budgets_positive_update BEFORE UPDATE OF limit_usd ON ai_user_budgets
WHEN NEW.limit_usd LIKE '-%' OR NEW.limit_usd NOT GLOB '*[1-9]*'
BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: limit_usd > 0'); END;
