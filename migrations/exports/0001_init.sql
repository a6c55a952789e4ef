-- exports: export jobs (pack UH). A job walks a source pack's list page by page and writes
-- the artefact (`<id>.<format>` in the host's artefact directory); `page_cursor` is where the
-- next page starts while it runs. `filter` is JSON text (a flat object of strings).
-- `claimed_by` / `lease_until` hold the lease of the tick running it (SDK `jobs`).
CREATE TABLE export_jobs (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    format TEXT NOT NULL,
    filter TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    row_count BIGINT NOT NULL DEFAULT 0,
    byte_count BIGINT NOT NULL DEFAULT 0,
    attempts BIGINT NOT NULL DEFAULT 0,
    requested_by TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    updated_at TEXT NOT NULL,
    page_cursor TEXT,
    claimed_by TEXT,
    lease_until TEXT
);
CREATE INDEX export_jobs_status ON export_jobs (status, id);
CREATE INDEX export_jobs_finished ON export_jobs (finished_at);
