-- The audit log: one row per decision, append-only, hash-chained per tenant.
-- Run by the owner role; the application role may only INSERT and SELECT.

CREATE TABLE IF NOT EXISTS audit_log (
    tenant_id  text    NOT NULL,
    seq        bigint  NOT NULL,            -- 1, 2, 3, ... per tenant
    id         uuid    NOT NULL UNIQUE,     -- the decision id: replays never write twice
    time_us    bigint  NOT NULL,            -- UTC microseconds since 1970
    trace_id   text    NOT NULL,
    principal  text    NOT NULL,
    action     text    NOT NULL,
    resource   text    NOT NULL,
    decision   text    NOT NULL CHECK (decision IN ('allow', 'deny')),
    record     jsonb   NOT NULL,            -- the whole record, for queries
    canonical  text    NOT NULL,            -- the exact bytes that were hashed
    prev_hash  bytea   NOT NULL,
    hash       bytea   NOT NULL,            -- sha256(prev_hash || canonical)
    PRIMARY KEY (tenant_id, seq)
);

CREATE INDEX IF NOT EXISTS audit_log_tenant_time ON audit_log (tenant_id, time_us);
CREATE INDEX IF NOT EXISTS audit_log_tenant_principal ON audit_log (tenant_id, principal, time_us);
CREATE INDEX IF NOT EXISTS audit_log_policies ON audit_log USING gin ((record -> 'determining_policies'));

-- Not even the owner changes history by accident.
CREATE OR REPLACE FUNCTION audit_log_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP;
END;
$$;

DROP TRIGGER IF EXISTS audit_log_no_update ON audit_log;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gatehouse_app') THEN
        REVOKE ALL ON audit_log FROM gatehouse_app;
        GRANT SELECT, INSERT ON audit_log TO gatehouse_app;
    END IF;
END;
$$;
