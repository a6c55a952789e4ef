-- security_actions: security actions that need approvals before they run (pack TR).
-- `params` and `result` hold JSON text. `revision` counts the changes of params or reason:
-- only approvals of the current revision count.
CREATE TABLE security_actions (
    id TEXT PRIMARY KEY,
    action_type TEXT NOT NULL,
    params TEXT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL,
    required_approvals BIGINT NOT NULL,
    revision BIGINT NOT NULL DEFAULT 1,
    requested_by TEXT NOT NULL,
    requested_by_name TEXT,
    rejected_by TEXT,
    rejection_reason TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    executed_at TEXT,
    executed_by TEXT,
    result TEXT,
    result_status BIGINT,
    last_error TEXT
);
CREATE INDEX security_actions_status ON security_actions (status, expires_at);
CREATE INDEX security_actions_created ON security_actions (created_at, id);

-- One approval per principal and action: the database's guarantee against double approval.
CREATE TABLE security_action_approvals (
    id TEXT PRIMARY KEY,
    action_id TEXT NOT NULL,
    revision BIGINT NOT NULL,
    principal_id TEXT NOT NULL,
    principal_name TEXT,
    comment TEXT,
    created_at TEXT NOT NULL,
    CONSTRAINT security_action_approvals_once UNIQUE (action_id, principal_id)
);
