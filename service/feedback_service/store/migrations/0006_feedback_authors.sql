-- Distinct authors without a time range: counted per (group, author) instead of per minute, so a
-- snapshot over all time reads one entry per distinct author, not one per author and minute.
CREATE TABLE IF NOT EXISTS feedback_authors
(
    project LowCardinality(String) COMMENT 'Tenant',
    model LowCardinality(String) COMMENT 'Model of the feedback',
    model_version LowCardinality(String) COMMENT 'Model version of the feedback',
    key LowCardinality(String) COMMENT 'Feedback key',
    source Enum8('unspecified' = 0, 'user' = 1, 'reviewer' = 2, 'automated' = 3) COMMENT 'Feedback source',
    author String COMMENT 'Non-empty author',
    feedback_count SimpleAggregateFunction(sum, Int64) COMMENT 'Signed count of the author''s current feedback'
)
ENGINE = AggregatingMergeTree
ORDER BY (project, model, model_version, key, source, author)
COMMENT 'Signed feedback counts per group and author, for exact distinct authors';

CREATE MATERIALIZED VIEW IF NOT EXISTS feedback_authors_mv TO feedback_authors AS
SELECT project, model, model_version, key, source, author,
    toInt64(is_deleted = 0) - toInt64(prev_exists) AS feedback_count
FROM feedback
WHERE author != '';

-- Feedback stored before this migration.
INSERT INTO feedback_authors
SELECT project, model, model_version, key, source, author, toInt64(1)
FROM feedback FINAL
WHERE is_deleted = 0 AND author != '' AND (SELECT count() FROM feedback_authors) = 0;
