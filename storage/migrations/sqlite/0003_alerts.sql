-- Discord alerts: the operator's rules per guild, when each rule last fired for each
-- subject (its cooldown), and the outbox of alerts waiting to be delivered. Replicas
-- share the outbox: a row is claimed before it is sent, and its dedupe key is unique,
-- so each alert is queued once and sent once. Needs nothing from other migrations.
CREATE TABLE alert_rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id INT NOT NULL,
    kind VARCHAR(16) NOT NULL,
    -- a secret: never logged, never shown in full
    webhook VARCHAR(500) NOT NULL,
    percent INT NULL,
    min_level INT NULL,
    within_hexes INT NULL,
    minutes INT NULL,
    member VARCHAR(100) NULL,
    cooldown_ms BIGINT NOT NULL,
    quiet VARCHAR(11) NULL,
    created_at BIGINT NOT NULL,
    disabled_at BIGINT NULL,
    disabled_reason VARCHAR(200) NULL
);

CREATE INDEX alert_rules_guild ON alert_rules (guild_id);

CREATE TABLE alert_cooldowns (
    rule_id INT NOT NULL,
    subject VARCHAR(120) NOT NULL,
    fired_at BIGINT NOT NULL,
    PRIMARY KEY (rule_id, subject)
);

CREATE TABLE alert_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule_id INT NOT NULL,
    guild_id INT NOT NULL,
    kind VARCHAR(16) NOT NULL,
    dedupe_key VARCHAR(200) NOT NULL,
    fired_at BIGINT NOT NULL,
    payload BLOB NOT NULL,
    -- queued, sent or dropped
    state VARCHAR(8) NOT NULL,
    attempts INT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_by VARCHAR(40) NULL,
    claimed_until BIGINT NULL,
    sent_at BIGINT NULL,
    last_error VARCHAR(200) NULL
);

CREATE UNIQUE INDEX alert_outbox_dedupe ON alert_outbox (dedupe_key);
CREATE INDEX alert_outbox_due ON alert_outbox (state, next_attempt_at);
CREATE INDEX alert_outbox_rule ON alert_outbox (rule_id);
