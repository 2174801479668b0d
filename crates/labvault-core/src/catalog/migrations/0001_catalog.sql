-- 1: projects, items, versions, vault metadata.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    wrapped_key BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL
);
CREATE TABLE items (
    id              TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL REFERENCES projects(id),
    area            TEXT NOT NULL CHECK (area IN ('uploads','workspace','plots','exports')),
    path            TEXT NOT NULL,
    media_type      TEXT NOT NULL,
    data_type       TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('active','soft_deleted','erased')),
    deleted_at      INTEGER,
    erased_at       INTEGER,
    erase_reason    TEXT,
    current_version INTEGER NOT NULL
);
CREATE UNIQUE INDEX items_active_path ON items(project_id, area, path) WHERE state = 'active';
CREATE INDEX items_project_area ON items(project_id, area, state);
CREATE TABLE item_versions (
    item_id          TEXT NOT NULL REFERENCES items(id),
    version          INTEGER NOT NULL,
    blob_id          TEXT UNIQUE,
    wrapped_data_key BLOB,
    size             INTEGER NOT NULL,
    sha256           TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    created_by       TEXT NOT NULL,
    PRIMARY KEY (item_id, version)
);
