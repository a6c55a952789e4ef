-- maintenance: the service mode and scheduled maintenance windows (pack UE).
CREATE TABLE maintenance_state (
    id TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    reason TEXT,
    changed_by TEXT,
    changed_at TEXT NOT NULL,
    window_id TEXT,
    until_at TEXT
);
CREATE TABLE maintenance_windows (
    id TEXT PRIMARY KEY,
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    mode TEXT NOT NULL,
    reason TEXT,
    status TEXT NOT NULL,
    created_by TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX maintenance_windows_status ON maintenance_windows (status, starts_at);
