-- Topic rules (the rules engine's configuration). The payload is the
-- TopicRulePayload as AWS's API takes it (sql, actions, errorAction, …),
-- stored whole; `disabled` is kept apart because Enable/DisableTopicRule
-- change it alone.
CREATE TABLE topic_rules (
    name       TEXT PRIMARY KEY NOT NULL,
    payload    TEXT NOT NULL,
    disabled   INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
