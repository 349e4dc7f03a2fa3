-- depends: 0001_initial
-- Idempotency keys of uploads: an upload repeated with the same key by the same member
-- of the same guild within the key's lifetime (10 minutes) answers the first upload's
-- status and seq and stores nothing again. A key is written in its upload's own
-- transaction, so it exists exactly when the upload was committed, for every replica.
CREATE TABLE upload_keys (
    guild_id INT NOT NULL,
    member VARCHAR(100) NOT NULL,
    idempotency_key VARCHAR(128) NOT NULL,
    -- what the key was first used for: reusing it for another upload is refused
    kind VARCHAR(16) NOT NULL,
    body_sha256 CHAR(64) NOT NULL,
    status SMALLINT NOT NULL,
    seq BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (guild_id, member, idempotency_key),
    KEY upload_keys_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
