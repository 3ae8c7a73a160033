-- Audit: which credential wrote each revision.
ALTER TABLE feedback
    ADD COLUMN IF NOT EXISTS created_by String DEFAULT '' COMMENT 'Key id of the credential that created the feedback',
    ADD COLUMN IF NOT EXISTS updated_by String DEFAULT '' COMMENT 'Key id of the credential that wrote this revision (the deleter, for a tombstone)';
