-- Writing an audit row parsed its whole canonical text into the jsonb `record` column,
-- only so that queries could find the policies a decision names: about a fifth of the
-- cost of an insert. New rows keep the policies in a text array (no JSON to parse) and
-- leave `record` NULL; rows written before keep theirs (the log is append-only), and
-- policy queries look at both. The canonical text stays the one source of the record.
ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS policies text[];
ALTER TABLE audit_log ALTER COLUMN record DROP NOT NULL;
CREATE INDEX IF NOT EXISTS audit_log_policy_ids ON audit_log USING gin (policies);
