-- api_clients: API clients and their keys (pack UD). Keys are stored only as SHA-256 digests;
-- key_prefix is the public start of the key, to recognise it in listings.
CREATE TABLE api_clients (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT,
    client_type TEXT,
    roles TEXT NOT NULL,
    key_prefix TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    active BOOLEAN NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    rotated_at TEXT
);
CREATE INDEX api_clients_name ON api_clients (name);
