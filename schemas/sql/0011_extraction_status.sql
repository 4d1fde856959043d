-- Text extraction is bounded (a child process with memory, CPU and time limits), and a
-- document whose extraction fails must never be tried forever: each row says how its
-- extraction went, and how many times it was started for this content. A row is marked
-- 'started' (and its attempt counted, committed) before the extractor runs, so that even a
-- crash of the whole process counts; after MAX attempts the content is quarantined and
-- indexed by its metadata alone.
ALTER TABLE document_texts ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'done'
    CHECK (status IN ('started', 'done', 'failed', 'quarantined'));
ALTER TABLE document_texts ADD COLUMN IF NOT EXISTS attempts integer NOT NULL DEFAULT 1;
ALTER TABLE document_texts ADD COLUMN IF NOT EXISTS error text;
