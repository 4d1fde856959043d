-- Lists filtered by the reader's compiled policy (gatehouse_adapter_pg::filter): its terms
-- are ownership, shared documents (by id: the primary key), shared subtrees (by path:
-- documents_path) and classification. Ownership gets its own index, so that a sparse
-- reader's filter (own documents or shared ones) is an index union, not a scan by name.
CREATE INDEX IF NOT EXISTS documents_owner ON documents (tenant_id, owner_id);
CREATE INDEX IF NOT EXISTS shares_grantee ON shares (tenant_id, grantee_type, grantee_id, role);
-- A tenant-wide list is by name: walking this index, a dense reader's page costs about a
-- page of rows.
CREATE INDEX IF NOT EXISTS documents_by_name ON documents (tenant_id, name, id);
