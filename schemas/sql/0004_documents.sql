-- The document platform owned by the PostgreSQL adapter: folders, documents, versions,
-- comments, shares and share links. Every table carries tenant_id, is under row-level
-- security (FORCEd: the owner too) and is read and written with the tenant set per
-- transaction: set_config('app.tenant_id', $1, true). Foreign keys include the tenant, so
-- no row can point into another tenant.
--
-- Folder paths: a folder's `path` is '/<root id>/…/<its id>/' (ids never contain '/'), and
-- a document's `path` is its folder's. "Everything under folder F" is then one indexed
-- prefix scan: path LIKE F.path || '%' on (tenant_id, path text_pattern_ops).

CREATE TABLE IF NOT EXISTS folders (
    tenant_id   text        NOT NULL,
    id          text        NOT NULL,
    parent_id   text,                              -- NULL for a tenant's root folders
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    path        text        NOT NULL,
    owner_id    text        NOT NULL,              -- a User id
    legal_hold  boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, parent_id) REFERENCES folders (tenant_id, id)
);
CREATE INDEX IF NOT EXISTS folders_path ON folders (tenant_id, path text_pattern_ops);
CREATE INDEX IF NOT EXISTS folders_children ON folders (tenant_id, parent_id, name, id);

CREATE TABLE IF NOT EXISTS documents (
    tenant_id       text        NOT NULL,
    id              text        NOT NULL,
    folder_id       text        NOT NULL,
    path            text        NOT NULL,          -- the folder's path
    name            text        NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    owner_id        text        NOT NULL,
    classification  text        NOT NULL DEFAULT 'internal'
                    CHECK (classification IN ('public', 'internal', 'confidential', 'restricted')),
    legal_hold      boolean     NOT NULL DEFAULT false,
    tags            text[]      NOT NULL DEFAULT '{}',
    metadata        jsonb       NOT NULL DEFAULT '{}',
    current_version integer     NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, folder_id) REFERENCES folders (tenant_id, id)
);
CREATE INDEX IF NOT EXISTS documents_path ON documents (tenant_id, path text_pattern_ops);
CREATE INDEX IF NOT EXISTS documents_in_folder ON documents (tenant_id, folder_id, name, id);
CREATE INDEX IF NOT EXISTS documents_tags ON documents USING gin (tags);

-- A version is immutable; restoring version n adds a new version with n's content.
CREATE TABLE IF NOT EXISTS document_versions (
    tenant_id     text        NOT NULL,
    document_id   text        NOT NULL,
    version       integer     NOT NULL CHECK (version >= 1),
    created_by    text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    note          text,
    restored_from integer,
    -- The content, once the blob adapter has stored it.
    content_type  text,
    size_bytes    bigint,
    sha256        text,
    object_key    text,
    PRIMARY KEY (tenant_id, document_id, version),
    FOREIGN KEY (tenant_id, document_id) REFERENCES documents (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS comments (
    tenant_id    text        NOT NULL,
    id           text        NOT NULL,
    document_id  text        NOT NULL,
    author_id    text        NOT NULL,
    body         text        NOT NULL CHECK (length(body) BETWEEN 1 AND 10000),
    mentions     text[]      NOT NULL DEFAULT '{}', -- User ids named as @id in the body
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, document_id) REFERENCES documents (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS comments_of_document ON comments (tenant_id, document_id, created_at, id);
CREATE INDEX IF NOT EXISTS comments_mentions ON comments USING gin (mentions);

-- A grant of a role on a folder (and its subtree) or a document to a user or a group.
CREATE TABLE IF NOT EXISTS shares (
    tenant_id     text        NOT NULL,
    id            text        NOT NULL,
    resource_type text        NOT NULL CHECK (resource_type IN ('Folder', 'Document')),
    resource_id   text        NOT NULL,
    grantee_type  text        NOT NULL CHECK (grantee_type IN ('User', 'Group')),
    grantee_id    text        NOT NULL,
    role          text        NOT NULL CHECK (role IN ('viewer', 'editor')),
    created_by    text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, resource_type, resource_id, grantee_type, grantee_id, role)
);

-- An external link to read one document until it expires; only the token's hash is kept.
CREATE TABLE IF NOT EXISTS share_links (
    tenant_id     text        NOT NULL,
    id            text        NOT NULL,
    document_id   text        NOT NULL,
    token_sha256  text        NOT NULL UNIQUE,
    expires_at    timestamptz NOT NULL,
    created_by    text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, document_id) REFERENCES documents (tenant_id, id) ON DELETE CASCADE
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['folders', 'documents', 'document_versions', 'comments', 'shares', 'share_links'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('DROP POLICY IF EXISTS %I ON %I', t || '_by_tenant', t);
        EXECUTE format(
            'CREATE POLICY %I ON %I
                 USING (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), ''''))
                 WITH CHECK (tenant_id = NULLIF(current_setting(''app.tenant_id'', true), ''''))',
            t || '_by_tenant', t);
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gatehouse_app') THEN
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO gatehouse_app', t);
        END IF;
    END LOOP;
END;
$$;
