-- The reviewer console: what reviewers judge (a snapshot of the AI call's input and output) and a link from
-- each item to its trace. Columns with defaults: queues and items stored before keep working unchanged
-- (no template, no content).
ALTER TABLE annotation_queues
    ADD COLUMN IF NOT EXISTS trace_url_template String DEFAULT '' COMMENT 'http(s) URL with {trace_id} (and {span_id}) linking an item to its trace; empty: no link';

ALTER TABLE queue_items
    ADD COLUMN IF NOT EXISTS content_format Enum8('none' = 0, 'plain' = 1, 'markdown' = 2, 'json' = 3) DEFAULT 'none' COMMENT 'How the content is written; none: the item has no content',
    ADD COLUMN IF NOT EXISTS content_input String DEFAULT '' COMMENT 'What the model was given',
    ADD COLUMN IF NOT EXISTS content_output String DEFAULT '' COMMENT 'What the model answered: what is judged',
    ADD COLUMN IF NOT EXISTS content_context Map(String, String) DEFAULT map() COMMENT 'Further named texts shown beside input and output';
