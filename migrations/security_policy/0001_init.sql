-- security_policy (pack TQ): policies, their blocklist rules, repeat offences, and what the
-- guard saw. `lookup_key` is the key the guard looks a rule up by (`ip:1.2.3.4`,
-- `net:v4:16:10.1.0.0`, `user:alice`, `api_key:<client id>`).
CREATE TABLE security_policies (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    mode TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE blocklist_rules (
    id TEXT PRIMARY KEY,
    policy_id TEXT,
    rule_type TEXT NOT NULL,
    value TEXT NOT NULL,
    lookup_key TEXT NOT NULL,
    severity TEXT NOT NULL,
    reason TEXT,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    expires_at TEXT,
    duration_seconds BIGINT,
    offense BIGINT NOT NULL DEFAULT 1,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX blocklist_rules_lookup ON blocklist_rules (lookup_key);
CREATE INDEX blocklist_rules_value ON blocklist_rules (rule_type, value);
CREATE INDEX blocklist_rules_policy ON blocklist_rules (policy_id);

CREATE TABLE blocklist_offenses (
    lookup_key TEXT PRIMARY KEY,
    offenses BIGINT NOT NULL,
    last_at TEXT NOT NULL
);

CREATE TABLE blocklist_hits (
    id TEXT PRIMARY KEY,
    rule_id TEXT NOT NULL,
    policy_id TEXT,
    mode TEXT NOT NULL,
    blocked BOOLEAN NOT NULL,
    source_ip TEXT NOT NULL,
    principal TEXT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX blocklist_hits_at ON blocklist_hits (at);
CREATE INDEX blocklist_hits_rule ON blocklist_hits (rule_id);
