-- feature_flags: feature toggles with percentage rollout (pack UA).
CREATE TABLE feature_flags (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    enabled BOOLEAN NOT NULL,
    description TEXT,
    flag_group TEXT,
    rollout_percent BIGINT NOT NULL DEFAULT 100,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX feature_flags_group ON feature_flags (flag_group);
