-- Each tenant's key for its blobs, wrapped by the master key (which the database never
-- sees). Deleting a tenant's rows makes every object of the tenant unreadable, copies
-- and backups included: crypto-shredding.
CREATE TABLE IF NOT EXISTS tenant_keys (
    tenant_id   text        NOT NULL,
    key_id      uuid        NOT NULL,
    wrapped     bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, key_id)
);

ALTER TABLE tenant_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenant_keys FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_keys_by_tenant ON tenant_keys;
CREATE POLICY tenant_keys_by_tenant ON tenant_keys
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));

-- The object of each version, with the key that sealed it.
ALTER TABLE document_versions ADD COLUMN IF NOT EXISTS key_id uuid;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gatehouse_app') THEN
        -- Keys are created and destroyed, never changed.
        GRANT SELECT, INSERT, DELETE ON tenant_keys TO gatehouse_app;
    END IF;
END;
$$;
