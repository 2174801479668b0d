-- 10: instrument folder watches (docs/watches.md). The folder path and file names stay inside
-- the encrypted catalog like every other name.
CREATE TABLE watches (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    folder        TEXT NOT NULL,
    project_id    TEXT NOT NULL,
    area          TEXT NOT NULL,
    data_type     TEXT NOT NULL,
    include       TEXT NOT NULL,  -- patterns, one per line ('' = every file)
    exclude       TEXT NOT NULL,
    delete_source INTEGER NOT NULL CHECK (delete_source IN (0, 1)),
    settle_ms     INTEGER NOT NULL CHECK (settle_ms >= 0),
    paused        INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    created_at    INTEGER NOT NULL,
    created_by    TEXT NOT NULL
);
-- What each watch imported: a source file (path under the folder, size, modification time) is
-- imported at most once; its row commits in the transaction that commits the item version.
CREATE TABLE watch_journal (
    watch_id          TEXT NOT NULL,
    source            TEXT NOT NULL,
    size              INTEGER NOT NULL,
    mtime_ns          INTEGER NOT NULL,
    item_id           TEXT NOT NULL,
    version           INTEGER NOT NULL,
    imported_at       INTEGER NOT NULL,
    source_deleted_at INTEGER,
    PRIMARY KEY (watch_id, source, size, mtime_ns)
) WITHOUT ROWID;
CREATE INDEX watch_journal_recent ON watch_journal(watch_id, imported_at);
