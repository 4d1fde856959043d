-- Capabilities granted to agents: each grant limited in time (or not) and revocable. The
-- entity store makes an agent `in` exactly its active grants: not revoked, not expired.
-- Revoked grants stay, with who revoked them and when.
CREATE TABLE IF NOT EXISTS agent_grants (
    id          bigserial   PRIMARY KEY,
    tenant_id   text        NOT NULL,
    agent_id    text        NOT NULL,
    capability  text        NOT NULL,
    granted_by  text        NOT NULL,
    granted_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at  timestamptz,
    revoked_at  timestamptz,
    revoked_by  text
);

-- At most one active grant of a capability to an agent: granting again renews it.
CREATE UNIQUE INDEX IF NOT EXISTS agent_grants_active
    ON agent_grants (tenant_id, agent_id, capability) WHERE revoked_at IS NULL;

ALTER TABLE agent_grants ENABLE ROW LEVEL SECURITY;
ALTER TABLE agent_grants FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS agent_grants_by_tenant ON agent_grants;
CREATE POLICY agent_grants_by_tenant ON agent_grants
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));

-- A grant or a revocation changes what the tenant's agents may do: caches drop it.
DROP TRIGGER IF EXISTS agent_grants_changed ON agent_grants;
CREATE TRIGGER agent_grants_changed AFTER INSERT OR UPDATE OR DELETE ON agent_grants
    FOR EACH ROW EXECUTE FUNCTION notify_tenant_changed();

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gatehouse_app') THEN
        -- Grants are revoked, never deleted.
        GRANT SELECT, INSERT, UPDATE ON agent_grants TO gatehouse_app;
        GRANT USAGE ON SEQUENCE agent_grants_id_seq TO gatehouse_app;
    END IF;
END;
$$;
