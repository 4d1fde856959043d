-- Cedar entities, per tenant, for the gateway's decisions; and the tenant directory.
-- Every tenant table is under row-level security, FORCEd (the owner too), read with the
-- tenant set per transaction: set_config('app.tenant_id', $1, true).

-- The tenant directory: not tenant data, readable by the application role.
CREATE TABLE IF NOT EXISTS tenants (
    tenant_id  text    PRIMARY KEY,
    name       text    NOT NULL,
    plan       text    NOT NULL,
    region     text    NOT NULL,
    suspended  boolean NOT NULL DEFAULT false
);

CREATE TABLE IF NOT EXISTS entities (
    tenant_id    text   NOT NULL,             -- '*' for global entities (roles, capabilities)
    entity_type  text   NOT NULL,
    entity_id    text   NOT NULL,
    attrs        jsonb  NOT NULL DEFAULT '{}', -- Cedar entity JSON attributes
    parents      jsonb  NOT NULL DEFAULT '[]', -- [{"type": ..., "id": ...}]
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, entity_type, entity_id)
);

ALTER TABLE entities ENABLE ROW LEVEL SECURITY;
ALTER TABLE entities FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS entities_by_tenant ON entities;
CREATE POLICY entities_by_tenant ON entities
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), '') OR tenant_id = '*')
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));

-- Tell the gateways which tenant changed, so their caches drop it.
CREATE OR REPLACE FUNCTION notify_tenant_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('gatehouse_entities', OLD.tenant_id);
    ELSE
        PERFORM pg_notify('gatehouse_entities', NEW.tenant_id);
    END IF;
    RETURN NULL;
END;
$$;
DROP TRIGGER IF EXISTS entities_changed ON entities;
CREATE TRIGGER entities_changed AFTER INSERT OR UPDATE OR DELETE ON entities
    FOR EACH ROW EXECUTE FUNCTION notify_tenant_changed();
DROP TRIGGER IF EXISTS tenants_changed ON tenants;
CREATE TRIGGER tenants_changed AFTER INSERT OR UPDATE OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION notify_tenant_changed();

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gatehouse_app') THEN
        GRANT SELECT ON tenants TO gatehouse_app;
        GRANT SELECT, INSERT, UPDATE, DELETE ON entities TO gatehouse_app;
    END IF;
END;
$$;
