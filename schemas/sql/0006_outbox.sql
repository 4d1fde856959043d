-- Work that must follow a committed change to the documents, kept in the same transaction
-- as the change: a crash between "saved" and "indexed" loses nothing, and a delete always
-- reaches the search index and the object store. Triggers write the outbox, so no code
-- path can forget it; a worker (gatehouse_adapter_search::outbox) drains it, tenant by
-- tenant, under row-level security like everything else.
--
-- Jobs:
--   index        make the search index agree with the document as it now is in the
--                database (indexed, re-indexed, or removed when the row is gone)
--   blob_delete  delete an object no version points at any more
CREATE TABLE IF NOT EXISTS outbox (
    tenant_id    text        NOT NULL,
    id           bigint      GENERATED ALWAYS AS IDENTITY,
    kind         text        NOT NULL CHECK (kind IN ('index', 'blob_delete')),
    document_id  text        NOT NULL,
    object_key   text,
    attempts     integer     NOT NULL DEFAULT 0,
    not_before   timestamptz NOT NULL DEFAULT now(),
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (tenant_id, not_before, id);

-- The text extracted from a document's current content, so that re-indexing (a rename, a
-- move, a new index) never fetches and parses the content again.
CREATE TABLE IF NOT EXISTS document_texts (
    tenant_id    text        NOT NULL,
    document_id  text        NOT NULL,
    sha256       text        NOT NULL,   -- of the content the text came from
    text         text        NOT NULL,
    extracted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, document_id),
    FOREIGN KEY (tenant_id, document_id) REFERENCES documents (tenant_id, id) ON DELETE CASCADE
);

-- Puts a table under row-level security as every tenant table is (later migrations call it
-- too): enabled, FORCEd so the owner is bound as well, and rows visible and writable only
-- when their tenant_id is the transaction's app.tenant_id.
CREATE OR REPLACE FUNCTION gatehouse_tenant_rls(tenant_table regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    name text := (SELECT relname FROM pg_class WHERE oid = tenant_table);
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tenant_table);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tenant_table);
    EXECUTE format('DROP POLICY IF EXISTS %I ON %s', name || '_by_tenant', tenant_table);
    EXECUTE format(
        'CREATE POLICY %I ON %s
             USING (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), ''''))
             WITH CHECK (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), ''''))',
        name || '_by_tenant', tenant_table);
END;
$$;

SELECT gatehouse_tenant_rls('outbox');
SELECT gatehouse_tenant_rls('document_texts');

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gatehouse_app') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON outbox, document_texts TO gatehouse_app;
    END IF;
END;
$$;

-- Any change to a document's row (created, renamed, tagged, moved, new content, deleted)
-- asks for it to be indexed again; the worker is woken on commit.
CREATE OR REPLACE FUNCTION outbox_index_document() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    row documents%ROWTYPE;
BEGIN
    IF TG_OP = 'DELETE' THEN row := OLD; ELSE row := NEW; END IF;
    INSERT INTO outbox (tenant_id, kind, document_id) VALUES (row.tenant_id, 'index', row.id);
    PERFORM pg_notify('gatehouse_outbox', row.tenant_id);
    RETURN NULL;
END;
$$;
DROP TRIGGER IF EXISTS documents_outbox ON documents;
CREATE TRIGGER documents_outbox AFTER INSERT OR UPDATE OR DELETE ON documents
    FOR EACH ROW EXECUTE FUNCTION outbox_index_document();

-- A version's object goes when its row goes (a document's delete cascades to them).
CREATE OR REPLACE FUNCTION outbox_delete_blob() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.object_key IS NOT NULL THEN
        INSERT INTO outbox (tenant_id, kind, document_id, object_key)
            VALUES (OLD.tenant_id, 'blob_delete', OLD.document_id, OLD.object_key);
        PERFORM pg_notify('gatehouse_outbox', OLD.tenant_id);
    END IF;
    RETURN NULL;
END;
$$;
DROP TRIGGER IF EXISTS document_versions_outbox ON document_versions;
CREATE TRIGGER document_versions_outbox AFTER DELETE ON document_versions
    FOR EACH ROW EXECUTE FUNCTION outbox_delete_blob();

-- Documents that predate the outbox are indexed too: one job each. The owner is under
-- FORCEd row-level security like everyone else, so it lifts FORCE for this statement
-- only, inside the migration's transaction.
ALTER TABLE documents NO FORCE ROW LEVEL SECURITY;
ALTER TABLE outbox NO FORCE ROW LEVEL SECURITY;
INSERT INTO outbox (tenant_id, kind, document_id)
    SELECT tenant_id, 'index', id FROM documents
    WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.tenant_id = documents.tenant_id AND o.document_id = documents.id);
ALTER TABLE documents FORCE ROW LEVEL SECURITY;
ALTER TABLE outbox FORCE ROW LEVEL SECURITY;
