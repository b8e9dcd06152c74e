-- Roost registry schema on PostgreSQL: the whole of SQLite's migrations
-- 0001 to 0006 in one step, with the same tables, columns and meanings.
-- Timestamps are milliseconds since the Unix epoch (UTC) in BIGINT. Text
-- that names or orders something is COLLATE "C", so listings and their
-- page keys compare byte by byte as in SQLite, whatever the database's
-- locale. JSON is kept as TEXT, not JSONB: documents are read whole and
-- must come back with their keys in the order they were written (a topic
-- rule's payload, a job record); the few queries that look inside cast.

CREATE TABLE thing_types (
    name                  TEXT COLLATE "C" PRIMARY KEY,
    id                    TEXT NOT NULL,
    description           TEXT,
    searchable_attributes TEXT NOT NULL DEFAULT '[]',
    deprecated            BOOLEAN NOT NULL DEFAULT FALSE,
    deprecation_date      BIGINT,
    creation_date         BIGINT NOT NULL
);

CREATE TABLE things (
    name          TEXT COLLATE "C" PRIMARY KEY,
    id            TEXT NOT NULL,
    type_name     TEXT COLLATE "C" REFERENCES thing_types(name),
    attributes    TEXT NOT NULL DEFAULT '{}',
    version       BIGINT NOT NULL,
    creation_date BIGINT NOT NULL
);
CREATE INDEX things_by_type ON things(type_name);

CREATE TABLE thing_groups (
    name          TEXT COLLATE "C" PRIMARY KEY,
    id            TEXT NOT NULL,
    parent_name   TEXT COLLATE "C" REFERENCES thing_groups(name),
    description   TEXT,
    attributes    TEXT NOT NULL DEFAULT '{}',
    version       BIGINT NOT NULL,
    creation_date BIGINT NOT NULL
);
CREATE INDEX thing_groups_by_parent ON thing_groups(parent_name);

CREATE TABLE thing_group_members (
    group_name TEXT COLLATE "C" NOT NULL REFERENCES thing_groups(name) ON DELETE CASCADE,
    thing_name TEXT COLLATE "C" NOT NULL REFERENCES things(name) ON DELETE CASCADE,
    PRIMARY KEY (group_name, thing_name)
);
CREATE INDEX thing_group_members_by_thing ON thing_group_members(thing_name);

CREATE TABLE ca_certificates (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    pem                TEXT NOT NULL,
    subject            TEXT NOT NULL,
    status             TEXT NOT NULL,
    auto_registration  BOOLEAN NOT NULL DEFAULT FALSE,
    mode               TEXT NOT NULL,
    customer_version   BIGINT NOT NULL,
    generation_id      TEXT NOT NULL,
    not_before         BIGINT NOT NULL,
    not_after          BIGINT NOT NULL,
    creation_date      BIGINT NOT NULL,
    last_modified_date BIGINT NOT NULL
);

CREATE TABLE certificates (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    pem                TEXT NOT NULL,
    status             TEXT NOT NULL,
    ca_certificate_id  TEXT COLLATE "C",
    mode               TEXT NOT NULL,
    customer_version   BIGINT NOT NULL,
    generation_id      TEXT NOT NULL,
    not_before         BIGINT NOT NULL,
    not_after          BIGINT NOT NULL,
    creation_date      BIGINT NOT NULL,
    last_modified_date BIGINT NOT NULL
);
CREATE INDEX certificates_by_creation ON certificates(creation_date, id);

-- A principal is a certificate ARN; AWS lets other principal kinds be attached too.
CREATE TABLE thing_principals (
    thing_name     TEXT COLLATE "C" NOT NULL REFERENCES things(name) ON DELETE CASCADE,
    principal      TEXT COLLATE "C" NOT NULL,
    principal_type TEXT NOT NULL,
    PRIMARY KEY (thing_name, principal)
);
CREATE INDEX thing_principals_by_principal ON thing_principals(principal);

CREATE TABLE policies (
    name               TEXT COLLATE "C" PRIMARY KEY,
    default_version    BIGINT NOT NULL,
    next_version       BIGINT NOT NULL,
    generation_id      TEXT NOT NULL,
    creation_date      BIGINT NOT NULL,
    last_modified_date BIGINT NOT NULL
);

CREATE TABLE policy_versions (
    policy_name   TEXT COLLATE "C" NOT NULL REFERENCES policies(name) ON DELETE CASCADE,
    version_id    BIGINT NOT NULL,
    document      TEXT NOT NULL,
    creation_date BIGINT NOT NULL,
    PRIMARY KEY (policy_name, version_id)
);

-- A target is a certificate ARN or a thing-group ARN.
CREATE TABLE policy_targets (
    policy_name TEXT COLLATE "C" NOT NULL REFERENCES policies(name),
    target      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (policy_name, target)
);
CREATE INDEX policy_targets_by_target ON policy_targets(target);

-- Control-plane credentials (SigV4). The secret must be kept in clear to
-- recompute signatures: restrict who may read this table.
CREATE TABLE access_keys (
    access_key_id     TEXT COLLATE "C" PRIMARY KEY,
    secret_access_key TEXT NOT NULL,
    description       TEXT NOT NULL,
    creation_date     BIGINT NOT NULL
);

-- Topic rules: the TopicRulePayload kept whole; `disabled` apart because
-- Enable/DisableTopicRule change it alone.
CREATE TABLE topic_rules (
    name       TEXT COLLATE "C" PRIMARY KEY,
    payload    TEXT NOT NULL,
    disabled   BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL
);

-- SNS-compatible notification topics and their subscriptions.
CREATE TABLE sns_topics (
    name       TEXT COLLATE "C" PRIMARY KEY,
    attributes TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE sns_subscriptions (
    arn        TEXT COLLATE "C" PRIMARY KEY,
    topic_name TEXT COLLATE "C" NOT NULL,
    protocol   TEXT NOT NULL,
    endpoint   TEXT NOT NULL,
    token      TEXT NOT NULL,
    confirmed  BOOLEAN NOT NULL,
    attributes TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX sns_subscriptions_topic ON sns_subscriptions (topic_name, created_at);

-- Topic rule destinations; only the SHA-256 of the current confirmation
-- token is kept. AWS refuses a second destination with the same URL.
CREATE TABLE topic_rule_destinations (
    arn              TEXT COLLATE "C" PRIMARY KEY,
    confirmation_url TEXT NOT NULL UNIQUE,
    status           TEXT NOT NULL,
    status_reason    TEXT,
    token_sha256     TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    last_updated_at  BIGINT NOT NULL
);
CREATE INDEX topic_rule_destinations_token ON topic_rule_destinations (token_sha256);

-- Jobs and job executions: each record whole as JSON text; the columns
-- beside it are what lists filter and sort on and what timers look for.
CREATE TABLE jobs (
    job_id           TEXT COLLATE "C" PRIMARY KEY,
    status           TEXT NOT NULL,
    target_selection TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    record           TEXT NOT NULL
);

CREATE TABLE job_executions (
    job_id           TEXT COLLATE "C" NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    thing_name       TEXT COLLATE "C" NOT NULL,
    execution_number BIGINT NOT NULL,
    status           TEXT NOT NULL,
    queued_at        BIGINT NOT NULL,
    -- When the execution times out if nothing happens first (Unix ms).
    deadline         BIGINT,
    record           TEXT NOT NULL,
    PRIMARY KEY (job_id, thing_name, execution_number)
);
CREATE INDEX job_executions_of_thing ON job_executions (thing_name, status, queued_at);
CREATE INDEX job_executions_by_deadline ON job_executions (deadline) WHERE deadline IS NOT NULL;

-- Event log options (SetV2LoggingOptions): one row once set.
CREATE TABLE v2_logging_options (
    id                BIGINT PRIMARY KEY CHECK (id = 1),
    role_arn          TEXT,
    default_log_level TEXT NOT NULL,
    disable_all_logs  BOOLEAN NOT NULL
);

-- Per-target levels (SetV2LoggingLevel).
CREATE TABLE v2_logging_levels (
    target_type TEXT COLLATE "C" NOT NULL,
    target_name TEXT COLLATE "C" NOT NULL,
    log_level   TEXT NOT NULL,
    PRIMARY KEY (target_type, target_name)
);
