-- Crash repair of the derived tables (store/derived_repair.py). An insert into feedback and the inserts of
-- its views are not one transaction; at start the store checks the revisions stored since its last
-- checkpoint of a consistent state and completes what a crash left out.

-- update_time is stamped when a revision is stored: the start-up check reads only recent ones.
ALTER TABLE feedback ADD INDEX IF NOT EXISTS update_time_minmax update_time TYPE minmax GRANULARITY 1;

CREATE TABLE IF NOT EXISTS derived_checkpoint
(
    name String COMMENT 'What the checkpoint covers (derived_tables)',
    consistent_before DateTime64(6, 'UTC') COMMENT 'Every feedback revision stored before this time has its derived rows',
    record_time DateTime64(6, 'UTC') COMMENT 'When this checkpoint was written; the latest wins'
)
ENGINE = ReplacingMergeTree(record_time)
ORDER BY name
COMMENT 'Checkpoints of a verified state of the derived tables, bounding the crash repair at start';
