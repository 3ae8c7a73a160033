-- Annotation queues: items to review, handed to reviewers with leases.
CREATE TABLE IF NOT EXISTS annotation_queues
(
    project LowCardinality(String) COMMENT 'The project the queue belongs to',
    queue_id String COMMENT 'Identifier of the queue',
    name String COMMENT 'Name shown to reviewers',
    keys Array(String) COMMENT 'Feedback keys reviewers annotate',
    instructions String COMMENT 'Instructions for reviewers',
    reviewers Array(String) COMMENT 'Reviewer ids allowed to claim; empty allows any',
    reviewers_per_item UInt8 COMMENT 'How many different reviewers annotate each item',
    lease_ms UInt64 COMMENT 'How long a claim lasts',
    create_time DateTime64(6, 'UTC') COMMENT 'When the queue was created'
)
ENGINE = ReplacingMergeTree
ORDER BY (project, queue_id)
COMMENT 'Annotation queues';

CREATE TABLE IF NOT EXISTS queue_items
(
    project LowCardinality(String) COMMENT 'The project of the queue',
    queue_id String COMMENT 'The queue',
    item_id String COMMENT 'Hash of trace and span: one item per trace and span in a queue',
    trace_id String COMMENT 'Trace id of the AI call to review',
    span_id String COMMENT 'Span id of the call, or empty',
    model LowCardinality(String) COMMENT 'Model of the call, or empty',
    model_version LowCardinality(String) COMMENT 'Model version of the call, or empty',
    add_time DateTime64(6, 'UTC') COMMENT 'When the item was first added'
)
ENGINE = ReplacingMergeTree
ORDER BY (project, queue_id, item_id)
COMMENT 'Items of annotation queues; re-adding an item keeps one row';

CREATE TABLE IF NOT EXISTS queue_claims
(
    project LowCardinality(String) COMMENT 'The project of the queue',
    queue_id String COMMENT 'The queue',
    item_id String COMMENT 'The claimed item',
    reviewer String COMMENT 'Who claimed it',
    claim_id String COMMENT 'Proof of the claim, given to SubmitAnnotation and SkipItem',
    state Enum8('claimed' = 1, 'done' = 2, 'skipped' = 3) COMMENT 'Held, annotated or skipped',
    lease_expire_time DateTime64(6, 'UTC') COMMENT 'When a held claim returns the item to the pool',
    update_time DateTime64(6, 'UTC') COMMENT 'When this state was written; the latest wins'
)
ENGINE = ReplacingMergeTree(update_time)
ORDER BY (project, queue_id, item_id, reviewer)
COMMENT 'One row per item and reviewer: the latest claim state wins';
