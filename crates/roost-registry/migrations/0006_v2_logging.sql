-- Event log options (SetV2LoggingOptions): one row once set; until then the
-- configuration file's default level applies.
CREATE TABLE v2_logging_options (
    id                INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    role_arn          TEXT,
    default_log_level TEXT NOT NULL,
    disable_all_logs  INTEGER NOT NULL
);

-- Per-target levels (SetV2LoggingLevel).
CREATE TABLE v2_logging_levels (
    target_type TEXT NOT NULL,
    target_name TEXT NOT NULL,
    log_level   TEXT NOT NULL,
    PRIMARY KEY (target_type, target_name)
);
