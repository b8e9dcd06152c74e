-- Roost gateway state that outlives a restart: persistent MQTT sessions
-- (subscriptions and the messages queued for them) and retained messages.
-- Times are Unix epoch milliseconds.

CREATE TABLE sessions (
    client_id       TEXT PRIMARY KEY NOT NULL,
    expiry_secs     INTEGER NOT NULL,
    disconnected_at INTEGER NOT NULL,
    subscriptions   TEXT NOT NULL
);

CREATE TABLE session_messages (
    client_id  TEXT NOT NULL REFERENCES sessions(client_id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    topic      TEXT NOT NULL,
    payload    BLOB NOT NULL,
    qos        INTEGER NOT NULL,
    retain     INTEGER NOT NULL,
    dup        INTEGER NOT NULL,
    properties TEXT NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (client_id, seq)
);

CREATE TABLE retained (
    topic      TEXT PRIMARY KEY NOT NULL,
    payload    BLOB NOT NULL,
    qos        INTEGER NOT NULL,
    properties TEXT NOT NULL,
    expires_at INTEGER,
    updated_at INTEGER NOT NULL
);
