-- Feedback key schemas: what a key means and which values it takes. Feedback for a key with a
-- schema is validated against it; keys without one stay free-form.
CREATE TABLE IF NOT EXISTS feedback_keys
(
    project LowCardinality(String) COMMENT 'The project the key belongs to',
    name String COMMENT 'The key name, as in feedback.key',
    kind Enum8('thumbs' = 1, 'score' = 2, 'label' = 3, 'text' = 4) COMMENT 'What values the key takes',
    description String COMMENT 'What reviewers should judge',
    higher_is_better Bool COMMENT 'Whether a higher score (thumbs-up, later label) is better',
    score_min Float64 COMMENT 'SCORE: smallest allowed score',
    score_max Float64 COMMENT 'SCORE: largest allowed score',
    score_step Float64 COMMENT 'SCORE: grid step from score_min; 0 allows any number',
    labels Array(String) COMMENT 'LABEL: the allowed labels, in order',
    archived Bool COMMENT 'Archived keys take no new feedback',
    create_time DateTime64(6, 'UTC') COMMENT 'When the key was created',
    update_time DateTime64(6, 'UTC') COMMENT 'When the key was last changed',
    revision UInt64 COMMENT '1 on create, +1 per change; the highest wins'
)
ENGINE = ReplacingMergeTree(revision)
ORDER BY (project, name)
COMMENT 'Feedback key schemas, one current row per project and key name';
