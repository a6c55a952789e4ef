-- notifications (pack UG): webhook channels and the outbox the tick delivers from.
-- A channel's signing secrets (`whsec_…`) are stored to sign with and never answered.
CREATE TABLE notification_channels (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    -- `webhook`
    kind TEXT NOT NULL,
    url TEXT NOT NULL,
    description TEXT,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    -- why the channel was turned off by the pack (a receiver's 410 Gone)
    disabled_reason TEXT,
    secret TEXT NOT NULL,
    -- the secret before the last rotation, still signed with until it expires
    previous_secret TEXT,
    previous_secret_expires_at TEXT,
    secret_rotated_at TEXT,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX notification_channels_name ON notification_channels (name);

-- One row per message. `payload` is the exact body every attempt sends (same bytes, same
-- `webhook-id` = id); status queued -> delivering -> delivered, or failed (waiting for a
-- retry at next_attempt_at) -> … -> dead. claimed_by / lease_until: the SDK's job lease.
CREATE TABLE notification_outbox (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    payload TEXT NOT NULL,
    dedupe_key TEXT,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error TEXT,
    last_status_code BIGINT,
    claimed_by TEXT,
    lease_until TEXT,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    delivered_at TEXT
);
-- a dedupe_key is seen once per channel (NULLs never collide)
CREATE UNIQUE INDEX notification_outbox_dedupe ON notification_outbox (channel_id, dedupe_key);
CREATE INDEX notification_outbox_due ON notification_outbox (status, next_attempt_at);
CREATE INDEX notification_outbox_status ON notification_outbox (status, id);
CREATE INDEX notification_outbox_channel ON notification_outbox (channel_id, id);
CREATE INDEX notification_outbox_delivered ON notification_outbox (status, delivered_at);
