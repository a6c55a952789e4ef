-- system_logs: the unified system log and audit trail (pack TV). The host writes every
-- enabled pack's log lines (info and above) and audit events here too.
CREATE TABLE system_logs (
    id TEXT PRIMARY KEY,
    logged_at TEXT NOT NULL,
    level TEXT NOT NULL,
    category TEXT NOT NULL,
    message TEXT NOT NULL,
    correlation_id TEXT,
    user_id TEXT,
    source TEXT NOT NULL,
    context TEXT NOT NULL
);
CREATE INDEX system_logs_logged_at ON system_logs (logged_at);
CREATE INDEX system_logs_level ON system_logs (level);
CREATE INDEX system_logs_category ON system_logs (category);
CREATE INDEX system_logs_correlation_id ON system_logs (correlation_id);
CREATE INDEX system_logs_user_id ON system_logs (user_id);
