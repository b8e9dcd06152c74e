-- Topic rule destinations: the confirmed URL prefixes the http rule action
-- may send to. Only the SHA-256 of the current confirmation token is kept
-- (it is looked up when a destination is confirmed); AWS refuses a second
-- destination with the same confirmation URL, hence UNIQUE.
CREATE TABLE topic_rule_destinations (
    arn              TEXT PRIMARY KEY NOT NULL,
    confirmation_url TEXT NOT NULL UNIQUE,
    status           TEXT NOT NULL,
    status_reason    TEXT,
    token_sha256     TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    last_updated_at  INTEGER NOT NULL
);

CREATE INDEX topic_rule_destinations_token ON topic_rule_destinations (token_sha256);
