-- rate_limits: rules the pack's guard enforces per subject (pack UC). `subject_key` is `*`
-- (every subject, counted per subject) or one subject: an IP, a principal id, `client:<id>`.
CREATE TABLE rate_limit_rules (
    id TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    subject_key TEXT NOT NULL,
    window_seconds BIGINT NOT NULL,
    max_requests BIGINT NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    description TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX rate_limit_rules_scope ON rate_limit_rules (scope, enabled);
