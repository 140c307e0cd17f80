-- Budget leases and alert delivery claims (the same tables as the SQLite set; only
-- PostgreSQL replicas take leases).

-- A slice of a spend window's remaining allowance held by one replica. The sum of live
-- leases plus the window's settled spend never exceeds the budget limit when granted.
-- The window row is created (spent 0) before its first lease, so it can be the lock.
CREATE TABLE ai_budget_leases (
    scope_id     UUID NOT NULL,
    period       TEXT NOT NULL CHECK (period IN ('daily', 'weekly', 'monthly', 'total')),
    window_start TIMESTAMPTZ NOT NULL,
    replica_id   UUID NOT NULL,
    amount_usd   NUMERIC NOT NULL CHECK (amount_usd >= 0),
    expires_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope_id, period, window_start, replica_id),
    FOREIGN KEY (scope_id, period, window_start)
        REFERENCES ai_spend_windows (scope_id, period, window_start) ON DELETE CASCADE
);
-- Renewal and return work on one replica's leases.
CREATE INDEX ai_budget_leases_replica ON ai_budget_leases (replica_id, expires_at);

-- A replica delivering an alert's webhook holds it until this time; another replica (or
-- a restart) takes over a pending delivery only after the claim ran out.
ALTER TABLE ai_budget_alerts ADD COLUMN claimed_until TIMESTAMPTZ;

-- Takes, grows, shrinks or renews this replica's lease on one spend window, atomically:
-- one call, one round trip. Every statement of a VOLATILE function sees a fresh snapshot,
-- so after the window row is locked (the lock every grant and every ledger write of this
-- window takes first) the sum of the other leases is read as committed, never stale.
--
-- The new amount is what this replica needs now plus whole requests of p_unit (the asking
-- request's estimate) worth a quarter of what would remain, at most p_max_units of them,
-- capped by limit - settled spend - other live leases: far from the limit a grant covers
-- many requests, near it the extra drops to nothing and slices are single requests (no
-- fractions of a request left idle where another replica could have used them).
-- A lowered limit shrinks the lease at once (possibly to zero). Returns the change (new
-- minus the live amount before), the new amount, the settled spend and the other leases
-- seen, and whether this replica's lease was live (false: expired or absent, so the
-- caller's copy of it is void).
CREATE FUNCTION tollgate_take_lease(
    p_scope TEXT, p_scope_id UUID, p_period TEXT, p_window_start TIMESTAMPTZ, p_replica UUID,
    p_limit NUMERIC, p_need NUMERIC, p_unit NUMERIC, p_max_units INTEGER, p_ttl_ms INTEGER)
RETURNS TABLE (delta NUMERIC, amount NUMERIC, spent NUMERIC, others NUMERIC, was_live BOOLEAN)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_spent   NUMERIC;
    v_others  NUMERIC;
    v_current NUMERIC;
    v_live    BOOLEAN;
    v_cap     NUMERIC;
    v_extra   NUMERIC := 0;
    v_new     NUMERIC;
BEGIN
    INSERT INTO ai_spend_windows AS w (scope, organization_id, project_id, user_id, period, window_start,
                                       spent_usd, requests, updated_at)
    VALUES (p_scope,
            CASE WHEN p_scope = 'organization' THEN p_scope_id END,
            CASE WHEN p_scope = 'project' THEN p_scope_id END,
            CASE WHEN p_scope = 'user' THEN p_scope_id END,
            p_period, p_window_start, 0, 0, now())
    ON CONFLICT (scope_id, period, window_start) DO NOTHING;
    SELECT w.spent_usd INTO v_spent FROM ai_spend_windows w
     WHERE w.scope_id = p_scope_id AND w.period = p_period AND w.window_start = p_window_start
       FOR UPDATE;

    DELETE FROM ai_budget_leases l
     WHERE l.scope_id = p_scope_id AND l.period = p_period AND l.window_start = p_window_start
       AND l.replica_id <> p_replica AND l.expires_at <= now();
    SELECT coalesce(sum(l.amount_usd), 0) INTO v_others FROM ai_budget_leases l
     WHERE l.scope_id = p_scope_id AND l.period = p_period AND l.window_start = p_window_start
       AND l.replica_id <> p_replica;
    SELECT l.amount_usd, l.expires_at > now() INTO v_current, v_live FROM ai_budget_leases l
     WHERE l.scope_id = p_scope_id AND l.period = p_period AND l.window_start = p_window_start
       AND l.replica_id = p_replica;
    IF NOT FOUND OR NOT v_live THEN
        v_current := 0;
        v_live := false;
    END IF;

    v_cap := p_limit - v_spent - v_others;
    IF p_unit > 0 THEN
        v_extra := p_unit * least(p_max_units, greatest(0, floor((v_cap - v_current - p_need) / (4 * p_unit))));
    END IF;
    v_new := greatest(0, least(v_cap, v_current + p_need + v_extra));

    INSERT INTO ai_budget_leases AS l (scope_id, period, window_start, replica_id, amount_usd, expires_at)
    VALUES (p_scope_id, p_period, p_window_start, p_replica, v_new, now() + p_ttl_ms * interval '1 millisecond')
    ON CONFLICT (scope_id, period, window_start, replica_id)
    DO UPDATE SET amount_usd = excluded.amount_usd, expires_at = excluded.expires_at;

    RETURN QUERY SELECT v_new - v_current, v_new, v_spent, v_others, v_live;
END
$$;
