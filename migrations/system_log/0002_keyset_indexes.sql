-- Indexes that match the log's filters and its one order (`logged_at DESC, id DESC`, the
-- keyset of cursor pages): each filter's equality columns, then `logged_at`, then `id`, so a
-- page — first or a million rows deep — is one index range, and a purge of the oldest rows
-- (`logged_at < $1 ORDER BY logged_at`) walks `(logged_at, id)`. They replace the
-- single-column indexes of 0001, which made the database sort every match of a filter.
CREATE INDEX system_logs_at_id ON system_logs (logged_at, id);
CREATE INDEX system_logs_category_at ON system_logs (category, logged_at, id);
CREATE INDEX system_logs_level_at ON system_logs (level, logged_at, id);
CREATE INDEX system_logs_category_level_at ON system_logs (category, level, logged_at, id);
CREATE INDEX system_logs_source_at ON system_logs (source, logged_at, id);
CREATE INDEX system_logs_correlation_at ON system_logs (correlation_id, logged_at, id);
CREATE INDEX system_logs_user_at ON system_logs (user_id, logged_at, id);
DROP INDEX system_logs_logged_at;
DROP INDEX system_logs_level;
DROP INDEX system_logs_category;
DROP INDEX system_logs_correlation_id;
DROP INDEX system_logs_user_id;
