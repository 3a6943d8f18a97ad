-- Spool's SQLite schema, version 4: what an operator tells every worker. Marks by kind and
-- name (`paused` queues, `quiet` workers, with when they were set) and epochs (kind `epoch`:
-- `quiet` and `terminate`, honoured by workers started before them); and records other
-- processes read (`supervisor` registrations, a queue's measured `runtime`), with JSON `info`.
CREATE TABLE IF NOT EXISTS spool_control (
    kind  TEXT    NOT NULL,
    name  TEXT    NOT NULL,
    value INTEGER NOT NULL,
    info  TEXT    NULL,
    PRIMARY KEY (kind, name)
) WITHOUT ROWID;
