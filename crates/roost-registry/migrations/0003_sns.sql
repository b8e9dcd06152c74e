-- SNS-compatible notification topics and their subscriptions. Attributes
-- are stored as JSON objects of strings, as the SNS API takes them.
CREATE TABLE sns_topics (
    name       TEXT PRIMARY KEY NOT NULL,
    attributes TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE sns_subscriptions (
    arn        TEXT PRIMARY KEY NOT NULL,
    topic_name TEXT NOT NULL,
    protocol   TEXT NOT NULL,
    endpoint   TEXT NOT NULL,
    token      TEXT NOT NULL,
    confirmed  INTEGER NOT NULL,
    attributes TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE INDEX sns_subscriptions_topic ON sns_subscriptions (topic_name, created_at);
