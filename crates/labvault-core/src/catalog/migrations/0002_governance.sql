-- 2: the audit trail (append-only: triggers refuse UPDATE and DELETE), legal holds,
-- retention policies.
CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY,
    device_id  TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    ts         INTEGER NOT NULL,
    user       TEXT NOT NULL,
    action     TEXT NOT NULL,
    resource   TEXT NOT NULL,
    ip_address TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    result     TEXT NOT NULL,
    detail     TEXT NOT NULL,
    v          INTEGER NOT NULL,
    prev_hash  BLOB NOT NULL,
    hash       BLOB NOT NULL,
    UNIQUE (device_id, seq)
);
CREATE INDEX audit_ts ON audit_events(ts);
CREATE INDEX audit_user_ts ON audit_events(user, ts);
CREATE INDEX audit_action_ts ON audit_events(action, ts);
CREATE INDEX audit_result_ts ON audit_events(result, ts);
CREATE INDEX audit_resource_ts ON audit_events(resource, ts);
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TABLE holds (
    id          TEXT PRIMARY KEY,
    target_kind TEXT NOT NULL CHECK (target_kind IN ('item','project')),
    target_id   TEXT NOT NULL,
    reason      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    released_at INTEGER,
    released_by TEXT
);
CREATE INDEX holds_active ON holds(target_id) WHERE released_at IS NULL;
CREATE TABLE retention_policies (
    scope      TEXT PRIMARY KEY,
    plan       TEXT,
    overrides  TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL
);
