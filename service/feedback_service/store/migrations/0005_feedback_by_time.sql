-- Exports read feedback in (create_time, feedback_id) order. The feedback table is ordered by
-- (project, feedback_id) for deduplication, so an export page would read and merge the whole project;
-- this copy is ordered by time, so a page reads only the rows after its cursor. create_time never
-- changes between revisions, so (project, create_time, feedback_id) deduplicates like
-- (project, feedback_id).
CREATE TABLE IF NOT EXISTS feedback_by_time AS feedback
ENGINE = ReplacingMergeTree(revision, is_deleted)
ORDER BY (project, create_time, feedback_id)
COMMENT 'Every feedback revision again, ordered by creation time, for exports';

CREATE MATERIALIZED VIEW IF NOT EXISTS feedback_by_time_mv TO feedback_by_time AS
SELECT * FROM feedback;

-- Feedback stored before this migration.
INSERT INTO feedback_by_time
SELECT * FROM feedback
WHERE (SELECT count() FROM feedback_by_time) = 0;
