-- API keys. Only the SHA-256 of each key is stored; the key itself is shown once, at creation.
CREATE TABLE IF NOT EXISTS api_keys
(
    key_id String COMMENT 'Public part of the key (fbk_<key_id>_<secret>)',
    project LowCardinality(String) COMMENT 'The project the key belongs to',
    name String COMMENT 'What the key is for, e.g. web-app ingest',
    scopes Array(LowCardinality(String)) COMMENT 'Granted scopes: ingest, annotate, read, admin',
    secret_sha256 String COMMENT 'SHA-256 (hex) of the whole key',
    create_time DateTime64(6, 'UTC') COMMENT 'When the key was created',
    revoke_time Nullable(DateTime64(6, 'UTC')) COMMENT 'When the key was revoked, or NULL',
    revision UInt64 COMMENT '1 on create, 2 once revoked; the highest wins'
)
ENGINE = ReplacingMergeTree(revision)
ORDER BY key_id
COMMENT 'API keys, hashed';
