-- 6: items rebuilt with its area/state CHECKs written as `=` comparisons joined by OR instead
-- of IN lists: SQLite evaluates an IN list of more than two values through a temporary b-tree
-- built on every INSERT (two per imported file, about half of the row's insert cost). Runs with
-- foreign keys off (SQLite's table-rebuild procedure); the migration runner checks them before
-- committing. Row ids are kept.
CREATE TABLE items_v6 (
    id              TEXT PRIMARY KEY,
    project_id      TEXT NOT NULL REFERENCES projects(id),
    area            TEXT NOT NULL CHECK (area = 'uploads' OR area = 'workspace'
                                         OR area = 'plots' OR area = 'exports'),
    path            TEXT NOT NULL,
    media_type      TEXT NOT NULL,
    data_type       TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    state           TEXT NOT NULL CHECK (state = 'active' OR state = 'soft_deleted'
                                         OR state = 'erased'),
    deleted_at      INTEGER,
    erased_at       INTEGER,
    erase_reason    TEXT,
    current_version INTEGER NOT NULL
);
INSERT INTO items_v6(rowid, id, project_id, area, path, media_type, data_type, created_by,
        created_at, updated_at, state, deleted_at, erased_at, erase_reason, current_version)
    SELECT rowid, id, project_id, area, path, media_type, data_type, created_by,
        created_at, updated_at, state, deleted_at, erased_at, erase_reason, current_version
    FROM items;
DROP TABLE items;
ALTER TABLE items_v6 RENAME TO items;
CREATE UNIQUE INDEX items_active_path ON items(project_id, area, path) WHERE state = 'active';
CREATE INDEX items_project_area ON items(project_id, area, state);
CREATE INDEX items_lifecycle ON items(state, data_type, created_at);
