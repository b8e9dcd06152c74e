-- Roost registry schema, version 1.
-- Timestamps are milliseconds since the Unix epoch (UTC). JSON columns hold
-- small documents (attribute maps, lists) that are always read whole.

CREATE TABLE thing_types (
    name                  TEXT PRIMARY KEY NOT NULL,
    id                    TEXT NOT NULL,
    description           TEXT,
    searchable_attributes TEXT NOT NULL DEFAULT '[]',
    deprecated            INTEGER NOT NULL DEFAULT 0,
    deprecation_date      INTEGER,
    creation_date         INTEGER NOT NULL
);

CREATE TABLE things (
    name          TEXT PRIMARY KEY NOT NULL,
    id            TEXT NOT NULL,
    type_name     TEXT REFERENCES thing_types(name),
    attributes    TEXT NOT NULL DEFAULT '{}',
    version       INTEGER NOT NULL,
    creation_date INTEGER NOT NULL
);
CREATE INDEX things_by_type ON things(type_name);

CREATE TABLE thing_groups (
    name          TEXT PRIMARY KEY NOT NULL,
    id            TEXT NOT NULL,
    parent_name   TEXT REFERENCES thing_groups(name),
    description   TEXT,
    attributes    TEXT NOT NULL DEFAULT '{}',
    version       INTEGER NOT NULL,
    creation_date INTEGER NOT NULL
);
CREATE INDEX thing_groups_by_parent ON thing_groups(parent_name);

CREATE TABLE thing_group_members (
    group_name TEXT NOT NULL REFERENCES thing_groups(name) ON DELETE CASCADE,
    thing_name TEXT NOT NULL REFERENCES things(name) ON DELETE CASCADE,
    PRIMARY KEY (group_name, thing_name)
);
CREATE INDEX thing_group_members_by_thing ON thing_group_members(thing_name);

CREATE TABLE ca_certificates (
    id                     TEXT PRIMARY KEY NOT NULL,
    pem                    TEXT NOT NULL,
    subject                TEXT NOT NULL,
    status                 TEXT NOT NULL,
    auto_registration      INTEGER NOT NULL DEFAULT 0,
    mode                   TEXT NOT NULL,
    customer_version       INTEGER NOT NULL,
    generation_id          TEXT NOT NULL,
    not_before             INTEGER NOT NULL,
    not_after              INTEGER NOT NULL,
    creation_date          INTEGER NOT NULL,
    last_modified_date     INTEGER NOT NULL
);

CREATE TABLE certificates (
    id                 TEXT PRIMARY KEY NOT NULL,
    pem                TEXT NOT NULL,
    status             TEXT NOT NULL,
    ca_certificate_id  TEXT,
    mode               TEXT NOT NULL,
    customer_version   INTEGER NOT NULL,
    generation_id      TEXT NOT NULL,
    not_before         INTEGER NOT NULL,
    not_after          INTEGER NOT NULL,
    creation_date      INTEGER NOT NULL,
    last_modified_date INTEGER NOT NULL
);
CREATE INDEX certificates_by_creation ON certificates(creation_date, id);

-- A principal is a certificate ARN; AWS lets other principal kinds be attached too.
CREATE TABLE thing_principals (
    thing_name     TEXT NOT NULL REFERENCES things(name) ON DELETE CASCADE,
    principal      TEXT NOT NULL,
    principal_type TEXT NOT NULL,
    PRIMARY KEY (thing_name, principal)
);
CREATE INDEX thing_principals_by_principal ON thing_principals(principal);

CREATE TABLE policies (
    name               TEXT PRIMARY KEY NOT NULL,
    default_version    INTEGER NOT NULL,
    next_version       INTEGER NOT NULL,
    generation_id      TEXT NOT NULL,
    creation_date      INTEGER NOT NULL,
    last_modified_date INTEGER NOT NULL
);

CREATE TABLE policy_versions (
    policy_name   TEXT NOT NULL REFERENCES policies(name) ON DELETE CASCADE,
    version_id    INTEGER NOT NULL,
    document      TEXT NOT NULL,
    creation_date INTEGER NOT NULL,
    PRIMARY KEY (policy_name, version_id)
);

-- A target is a certificate ARN or a thing-group ARN.
CREATE TABLE policy_targets (
    policy_name TEXT NOT NULL REFERENCES policies(name),
    target      TEXT NOT NULL,
    PRIMARY KEY (policy_name, target)
);
CREATE INDEX policy_targets_by_target ON policy_targets(target);

-- Control-plane credentials (SigV4). The secret must be kept in clear to
-- recompute signatures; the database file is created 0600.
CREATE TABLE access_keys (
    access_key_id     TEXT PRIMARY KEY NOT NULL,
    secret_access_key TEXT NOT NULL,
    description       TEXT NOT NULL,
    creation_date     INTEGER NOT NULL
);
