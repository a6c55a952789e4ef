-- retention (pack UI): one policy per category (its id), which is also the category's lease
-- row for the tick (status idle | running | off, claimed_by, lease_until, next_attempt_at:
-- see plugins/sdk/src/jobs.rs), and the runs the tick recorded.
CREATE TABLE retention_policies (
    id TEXT PRIMARY KEY,
    retain_days BIGINT NOT NULL,
    enabled BOOLEAN NOT NULL,
    status TEXT NOT NULL,
    claimed_by TEXT,
    lease_until TEXT,
    next_attempt_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
);

CREATE TABLE retention_runs (
    id TEXT PRIMARY KEY,
    category TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    -- what was purged: rows older than this
    cutoff TEXT NOT NULL,
    removed BIGINT NOT NULL,
    batches BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    -- false when the run stopped at its time budget with more to purge (the next tick goes on)
    complete BOOLEAN NOT NULL,
    error TEXT,
    instance TEXT NOT NULL
);
CREATE INDEX retention_runs_category ON retention_runs (category, id);
CREATE INDEX retention_runs_started ON retention_runs (started_at);
