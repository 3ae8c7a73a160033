-- Exact, precomputed aggregates per (model, version, key, source, minute).
--
-- Every row written to `feedback` carries, next to the new revision, the value
-- of the revision it replaces (prev_*). The materialized view turns each row
-- into signed deltas: + what the new revision contributes (nothing for a
-- deletion tombstone), - what the replaced one contributed. Summed, they give
-- the aggregates of the current feedback however many updates and deletes
-- happened, and a snapshot reads per-minute rows instead of every feedback row.
ALTER TABLE feedback
    ADD COLUMN IF NOT EXISTS prev_exists UInt8 DEFAULT 0 COMMENT '1 when this row replaces a counted revision (update or delete)',
    ADD COLUMN IF NOT EXISTS prev_value_kind Enum8('none' = 0, 'thumb' = 1, 'score' = 2, 'label' = 3) DEFAULT 'none' COMMENT 'value_kind of the replaced revision',
    ADD COLUMN IF NOT EXISTS prev_thumb Enum8('unspecified' = 0, 'up' = 1, 'down' = 2) DEFAULT 'unspecified' COMMENT 'thumb of the replaced revision',
    ADD COLUMN IF NOT EXISTS prev_score Float64 DEFAULT 0 COMMENT 'score of the replaced revision',
    ADD COLUMN IF NOT EXISTS prev_label String DEFAULT '' COMMENT 'label of the replaced revision',
    ADD COLUMN IF NOT EXISTS prev_has_comment UInt8 DEFAULT 0 COMMENT '1 when the replaced revision had a comment',
    ADD COLUMN IF NOT EXISTS prev_has_correction UInt8 DEFAULT 0 COMMENT '1 when the replaced revision had a correction';

-- Exports read in create_time order: let parts outside the range be skipped.
ALTER TABLE feedback ADD INDEX IF NOT EXISTS create_time_minmax create_time TYPE minmax GRANULARITY 1;

CREATE TABLE IF NOT EXISTS feedback_aggregates
(
    project LowCardinality(String) COMMENT 'Tenant',
    model LowCardinality(String) COMMENT 'Model of the feedback',
    model_version LowCardinality(String) COMMENT 'Model version of the feedback',
    key LowCardinality(String) COMMENT 'Feedback key',
    source Enum8('unspecified' = 0, 'user' = 1, 'reviewer' = 2, 'automated' = 3) COMMENT 'Feedback source',
    minute DateTime('UTC') COMMENT 'create_time rounded down to the minute',
    feedback_count SimpleAggregateFunction(sum, Int64) COMMENT 'Number of current feedback',
    thumbs_up SimpleAggregateFunction(sum, Int64) COMMENT 'Thumbs-up votes',
    thumbs_down SimpleAggregateFunction(sum, Int64) COMMENT 'Thumbs-down votes',
    comments SimpleAggregateFunction(sum, Int64) COMMENT 'Feedback with a comment',
    corrections SimpleAggregateFunction(sum, Int64) COMMENT 'Feedback with a correction',
    labels SimpleAggregateFunction(sumMap, Map(String, Int64)) COMMENT 'Count per label',
    scores SimpleAggregateFunction(sumMap, Map(UInt64, Int64)) COMMENT 'Count per score value (key: the IEEE-754 bits of the score)',
    authors SimpleAggregateFunction(sumMap, Map(String, Int64)) COMMENT 'Count per non-empty author'
)
ENGINE = AggregatingMergeTree
ORDER BY (project, model, model_version, key, source, minute)
COMMENT 'Signed per-minute deltas of feedback aggregates; sum them for the current state';

CREATE MATERIALIZED VIEW IF NOT EXISTS feedback_aggregates_mv TO feedback_aggregates AS
SELECT
    project,
    model,
    model_version,
    key,
    source,
    toStartOfMinute(create_time) AS minute,
    toInt64(is_deleted = 0) - toInt64(prev_exists) AS feedback_count,
    toInt64(is_deleted = 0 AND value_kind = 'thumb' AND thumb = 'up')
        - toInt64(prev_exists = 1 AND prev_value_kind = 'thumb' AND prev_thumb = 'up') AS thumbs_up,
    toInt64(is_deleted = 0 AND value_kind = 'thumb' AND thumb = 'down')
        - toInt64(prev_exists = 1 AND prev_value_kind = 'thumb' AND prev_thumb = 'down') AS thumbs_down,
    toInt64(is_deleted = 0 AND comment != '') - toInt64(prev_exists = 1 AND prev_has_comment = 1) AS comments,
    toInt64(is_deleted = 0 AND correction != '') - toInt64(prev_exists = 1 AND prev_has_correction = 1) AS corrections,
    mapFilter((k, n) -> n != 0, mapAdd(
        map(label, toInt64(is_deleted = 0 AND value_kind = 'label')),
        map(prev_label, -toInt64(prev_exists = 1 AND prev_value_kind = 'label')))) AS labels,
    mapFilter((k, n) -> n != 0, mapAdd(
        map(reinterpretAsUInt64(score), toInt64(is_deleted = 0 AND value_kind = 'score')),
        map(reinterpretAsUInt64(prev_score), -toInt64(prev_exists = 1 AND prev_value_kind = 'score')))) AS scores,
    mapFilter((k, n) -> n != 0 AND k != '', map(author, toInt64(is_deleted = 0) - toInt64(prev_exists))) AS authors
FROM feedback;

-- Feedback stored before this migration: aggregate its current state once.
INSERT INTO feedback_aggregates
SELECT
    project, model, model_version, key, source, toStartOfMinute(create_time) AS minute,
    toInt64(1), toInt64(value_kind = 'thumb' AND thumb = 'up'), toInt64(value_kind = 'thumb' AND thumb = 'down'),
    toInt64(comment != ''), toInt64(correction != ''),
    mapFilter((k, n) -> n != 0, map(label, toInt64(value_kind = 'label'))),
    mapFilter((k, n) -> n != 0, map(reinterpretAsUInt64(score), toInt64(value_kind = 'score'))),
    mapFilter((k, n) -> n != 0 AND k != '', map(author, toInt64(1)))
FROM feedback FINAL
WHERE is_deleted = 0 AND (SELECT count() FROM feedback_aggregates) = 0;

-- One vote per user: the current SOURCE_USER feedback of each (trace, key, author), found by primary
-- key instead of by scanning feedback. Fed by every feedback row of a user vote: the newest create
-- wins (version create_time); later revisions of the same vote, its deletion tombstone included, have
-- the same create_time and win by being inserted later.
CREATE TABLE IF NOT EXISTS user_votes
(
    project LowCardinality(String) COMMENT 'Tenant',
    trace_id String COMMENT 'Trace voted on',
    key LowCardinality(String) COMMENT 'Feedback key voted on',
    author String COMMENT 'The end user',
    feedback_id String COMMENT 'Their current vote',
    create_time DateTime64(6, 'UTC') COMMENT 'When that vote was created',
    is_deleted UInt8 COMMENT '1 when the vote was deleted or replaced'
)
ENGINE = ReplacingMergeTree(create_time, is_deleted)
ORDER BY (project, trace_id, key, author)
COMMENT 'Current end-user vote per trace, key and author';

CREATE MATERIALIZED VIEW IF NOT EXISTS user_votes_mv TO user_votes AS
SELECT project, trace_id, key, author, feedback_id, create_time, is_deleted
FROM feedback
WHERE source = 'user' AND author != '';

INSERT INTO user_votes
SELECT project, trace_id, key, author, feedback_id, create_time, is_deleted
FROM feedback FINAL
WHERE source = 'user' AND author != '' AND is_deleted = 0 AND (SELECT count() FROM user_votes) = 0;
