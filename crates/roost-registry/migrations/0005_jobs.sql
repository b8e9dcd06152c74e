-- Jobs and job executions. Each record is kept whole as JSON (the
-- roost-jobs types); the columns beside it are what lists filter and sort
-- on, and what the timers look for after a restart.
CREATE TABLE jobs (
    job_id           TEXT PRIMARY KEY NOT NULL,
    status           TEXT NOT NULL,
    target_selection TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    record           TEXT NOT NULL
);

CREATE TABLE job_executions (
    job_id           TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    thing_name       TEXT NOT NULL,
    execution_number INTEGER NOT NULL,
    status           TEXT NOT NULL,
    queued_at        INTEGER NOT NULL,
    -- When the execution times out if nothing happens first (Unix ms).
    deadline         INTEGER,
    record           TEXT NOT NULL,
    PRIMARY KEY (job_id, thing_name, execution_number)
);

CREATE INDEX job_executions_of_thing ON job_executions (thing_name, status, queued_at);
CREATE INDEX job_executions_by_deadline ON job_executions (deadline) WHERE deadline IS NOT NULL;
