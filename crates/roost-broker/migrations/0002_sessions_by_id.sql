-- Gateway state is written as it changes, one row per thing that changes:
-- a session, a subscription, a queued message. Sessions are named by a
-- numeric id that Roost never reuses while it runs, so that rows left by an
-- ended session can never be read as a later session's with the same
-- client id (several rows for one client id: the highest id is the live
-- one). No foreign keys: the writer keeps the rows consistent, and the
-- start-up cleanup removes anything an interrupted run left dangling.
-- Times are Unix epoch milliseconds.

ALTER TABLE sessions RENAME TO sessions_v1;
ALTER TABLE session_messages RENAME TO session_messages_v1;

CREATE TABLE sessions (
    id              INTEGER PRIMARY KEY NOT NULL,
    client_id       TEXT NOT NULL,
    expiry_secs     INTEGER NOT NULL,
    -- NULL: a client was connected when Roost last wrote the row.
    disconnected_at INTEGER
);

CREATE TABLE session_subscriptions (
    session_id          INTEGER NOT NULL,
    filter              TEXT NOT NULL,
    qos                 INTEGER NOT NULL,
    no_local            INTEGER NOT NULL,
    retain_as_published INTEGER NOT NULL,
    retain_handling     INTEGER NOT NULL,
    PRIMARY KEY (session_id, filter)
);

-- seq orders a session's messages as they were queued.
CREATE TABLE session_messages (
    session_id INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    topic      TEXT NOT NULL,
    payload    BLOB NOT NULL,
    qos        INTEGER NOT NULL,
    retain     INTEGER NOT NULL,
    dup        INTEGER NOT NULL,
    properties TEXT NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (session_id, seq)
);

-- The last snapshot written by the previous version carries over.
INSERT INTO sessions (id, client_id, expiry_secs, disconnected_at)
    SELECT rowid, client_id, expiry_secs, disconnected_at FROM sessions_v1;

INSERT INTO session_subscriptions
    (session_id, filter, qos, no_local, retain_as_published, retain_handling)
    SELECT s.rowid,
           json_extract(j.value, '$.filter'),
           json_extract(j.value, '$.qos'),
           json_extract(j.value, '$.no_local'),
           json_extract(j.value, '$.retain_as_published'),
           json_extract(j.value, '$.retain_handling')
    FROM sessions_v1 s, json_each(s.subscriptions) j;

INSERT INTO session_messages
    (session_id, seq, topic, payload, qos, retain, dup, properties, expires_at)
    SELECT s.rowid, m.seq + 1, m.topic, m.payload, m.qos, m.retain, m.dup, m.properties, m.expires_at
    FROM session_messages_v1 m JOIN sessions_v1 s ON s.client_id = m.client_id;

DROP TABLE session_messages_v1;
DROP TABLE sessions_v1;
