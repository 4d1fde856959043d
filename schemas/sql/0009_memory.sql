-- Memory lanes: per-tenant, per-agent memory namespaces in the data plane. A lane is a
-- `MemoryLane` entity (its agent and the user it is kept for); its items are keyed values
-- with a text that `memory:search` finds.
CREATE TABLE IF NOT EXISTS memory_items (
    tenant_id   text        NOT NULL,
    lane_id     text        NOT NULL,
    key         text        NOT NULL,
    value       jsonb       NOT NULL,
    text        text        NOT NULL DEFAULT '',
    written_by  text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    search      tsvector    GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED,
    PRIMARY KEY (tenant_id, lane_id, key)
);
CREATE INDEX IF NOT EXISTS memory_items_search ON memory_items USING gin (search);

ALTER TABLE memory_items ENABLE ROW LEVEL SECURITY;
ALTER TABLE memory_items FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS memory_items_by_tenant ON memory_items;
CREATE POLICY memory_items_by_tenant ON memory_items
    USING (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''))
    WITH CHECK (tenant_id = NULLIF(current_setting('app.tenant_id', true), ''));

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gatehouse_app') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON memory_items TO gatehouse_app;
    END IF;
END;
$$;
