-- Feedback, one row per revision of each piece of feedback.
-- Keyed by (project, feedback_id) only: a date in the dedup key would let a
-- retry that crosses midnight become a duplicate. Reads take the highest
-- revision (FINAL or LIMIT 1 BY), so they are right before merges too.
CREATE TABLE IF NOT EXISTS feedback
(
    project LowCardinality(String) COMMENT 'Tenant that owns the feedback',
    feedback_id String COMMENT 'Idempotency key, unique within the project (client-supplied or a server UUID)',
    trace_id String COMMENT 'Trace id of the judged AI call; 32-hex ids in lower case',
    span_id String COMMENT 'Span id of the judged AI call, or empty',
    session_id String COMMENT 'Conversation or session id, or empty',
    model LowCardinality(String) COMMENT 'Model that produced the judged output, or empty',
    model_version LowCardinality(String) COMMENT 'Version of that model, or empty',
    key LowCardinality(String) COMMENT 'What is judged, e.g. thumbs or helpfulness',
    value_kind Enum8('none' = 0, 'thumb' = 1, 'score' = 2, 'label' = 3) COMMENT 'Which value column holds the judgement',
    thumb Enum8('unspecified' = 0, 'up' = 1, 'down' = 2) COMMENT 'Thumbs vote when value_kind = thumb',
    score Float64 COMMENT 'Score when value_kind = score',
    label String COMMENT 'Label when value_kind = label',
    comment String CODEC(ZSTD(3)) COMMENT 'Free-text comment, or empty',
    correction String CODEC(ZSTD(3)) COMMENT 'The right output, or empty',
    source Enum8('unspecified' = 0, 'user' = 1, 'reviewer' = 2, 'automated' = 3) COMMENT 'Who gave the feedback',
    author String COMMENT 'Opaque id of the user, reviewer or program, or empty',
    metadata Map(String, String) COMMENT 'Caller-defined string pairs',
    create_time DateTime64(6, 'UTC') COMMENT 'When the feedback was first stored',
    update_time DateTime64(6, 'UTC') COMMENT 'When this revision was stored',
    revision UInt64 COMMENT 'Revision number: 1 on create, +1 per update or delete; the highest wins',
    is_deleted UInt8 COMMENT '1 for the tombstone written by a delete',
    create_fingerprint String COMMENT 'Digest of the create request, to tell a retry from a conflicting payload',
    INDEX trace_id_bloom trace_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree(revision, is_deleted)
ORDER BY (project, feedback_id)
COMMENT 'Feedback on AI outputs; one row per revision, highest revision wins';
