-- 9: shared projects (docs/sharing.md). Everything here is this device's own state.
-- The user's identity (private halves wrapped by the root key); `via` says whether it was
-- made here or received from another device of the user.
CREATE TABLE sync_identity (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    user_id         TEXT NOT NULL,
    x25519_public   BLOB NOT NULL,
    ed25519_public  BLOB NOT NULL,
    x25519_wrapped  BLOB NOT NULL,
    ed25519_wrapped BLOB NOT NULL,
    via             TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);
-- Other users' identities as first seen (pinned): a different key later is refused.
CREATE TABLE sync_identities (
    user_id       TEXT PRIMARY KEY,
    x25519        BLOB NOT NULL,
    ed25519       BLOB NOT NULL,
    first_seen_at INTEGER NOT NULL
);
-- Each shared project's membership log, as verified here (what the tenant sends must extend it).
CREATE TABLE sync_membership (
    project_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    entry      BLOB NOT NULL,
    PRIMARY KEY (project_id, seq)
) WITHOUT ROWID;
-- Project keys of epochs 2.. (epoch 1 is projects.wrapped_key), wrapped by the root key.
CREATE TABLE sync_epoch_keys (
    project_id TEXT NOT NULL,
    epoch      INTEGER NOT NULL,
    wrapped    BLOB NOT NULL,
    PRIMARY KEY (project_id, epoch)
) WITHOUT ROWID;
-- The tenant's policy as last received, the last contact (which renews the offline lease)
-- and how many members the log has.
ALTER TABLE sync_projects ADD COLUMN lease_days INTEGER;
ALTER TABLE sync_projects ADD COLUMN rotation_days INTEGER;
ALTER TABLE sync_projects ADD COLUMN contact_at INTEGER;
ALTER TABLE sync_projects ADD COLUMN members INTEGER NOT NULL DEFAULT 1;
