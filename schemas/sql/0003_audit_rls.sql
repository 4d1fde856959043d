-- The audit log is tenant data: row-level security like every tenant table. Writers and
-- readers set the tenant per transaction: set_config('app.tenant_id', $1, true).
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS audit_log_by_tenant ON audit_log;
CREATE POLICY audit_log_by_tenant ON audit_log
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));
