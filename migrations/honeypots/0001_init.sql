-- honeypots (pack TS): decoy paths the host serves through the pack's fallback, and the
-- telemetry of their hits (decoy hits the host saw, and external sensors' reports).
CREATE TABLE honeypots (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    description TEXT,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    auto_block BOOLEAN NOT NULL DEFAULT FALSE,
    severity TEXT NOT NULL,
    hits BIGINT NOT NULL DEFAULT 0,
    last_hit_at TEXT,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX honeypots_name ON honeypots (name);
CREATE UNIQUE INDEX honeypots_path ON honeypots (path);

-- One row per hit, newest first by id (UUID v7). A honeypot's deletion keeps its telemetry:
-- the evidence outlives the decoy (each row carries the path and severity it was hit with).
CREATE TABLE honeypot_telemetry (
    id TEXT PRIMARY KEY,
    honeypot_id TEXT NOT NULL,
    -- `decoy` (the host served the decoy) or `sensor` (reported through the API)
    origin TEXT NOT NULL,
    source_ip TEXT NOT NULL,
    method TEXT,
    path TEXT,
    query TEXT,
    user_agent TEXT,
    -- JSON object: header name -> value, credentials and secret-looking headers left out
    headers TEXT NOT NULL,
    severity TEXT NOT NULL,
    blocked BOOLEAN NOT NULL DEFAULT FALSE,
    block_rule_id TEXT,
    block_error TEXT,
    reported_by TEXT,
    at TEXT NOT NULL
);
CREATE INDEX honeypot_telemetry_honeypot ON honeypot_telemetry (honeypot_id, id);
CREATE INDEX honeypot_telemetry_source ON honeypot_telemetry (source_ip, id);
CREATE INDEX honeypot_telemetry_at ON honeypot_telemetry (at);
