-- feature_flags: typed flags with variants and targeting rules, and reusable segments (issue 21).
-- Existing flags read as boolean flags without variants or rules: they answer as before.
ALTER TABLE feature_flags ADD COLUMN flag_type TEXT NOT NULL DEFAULT 'boolean';
ALTER TABLE feature_flags ADD COLUMN variants TEXT NOT NULL DEFAULT '[]';
ALTER TABLE feature_flags ADD COLUMN default_variant TEXT;
ALTER TABLE feature_flags ADD COLUMN rules TEXT NOT NULL DEFAULT '[]';
CREATE TABLE feature_segments (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    description TEXT,
    constraints TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
-- which flags' rules use which segments: a segment in use cannot be deleted
CREATE TABLE feature_flag_segments (
    flag_key TEXT NOT NULL,
    segment_key TEXT NOT NULL,
    PRIMARY KEY (flag_key, segment_key)
);
CREATE INDEX feature_flag_segments_segment ON feature_flag_segments (segment_key);
