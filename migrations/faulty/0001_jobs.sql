-- faulty (test fixture): a job table claimed through the SDK's leases (valhalla_sdk::jobs),
-- for the e2e tests of claims that race and leases that lapse.
CREATE TABLE faulty_jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    claimed_by TEXT,
    lease_until TEXT,
    next_attempt_at TEXT,
    done_by TEXT
);
CREATE INDEX faulty_jobs_status ON faulty_jobs (status, id);
