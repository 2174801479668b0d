-- 7: file sync with the lab's tenant (docs/sync-protocol.md). Everything here is local state
-- of this device; what the tenant holds is sealed.
-- A version that lost a concurrent edit to another device's, kept beside the head.
ALTER TABLE item_versions ADD COLUMN conflict INTEGER NOT NULL DEFAULT 0;
-- The identity of an erased version (its blob id before erasure nulled it), so every device
-- names the same version the same way.
ALTER TABLE item_versions ADD COLUMN sync_blob TEXT;
-- The tenant this vault syncs with (at most one) and the account signed in.
CREATE TABLE sync_remote (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    url      TEXT NOT NULL,
    pin      TEXT NOT NULL,
    tenant   TEXT,
    email    TEXT,
    user_id  TEXT,
    added_at INTEGER NOT NULL
);
-- This device's sync identity: its key pairs (private halves wrapped by the root key), its
-- registration, and a pairing secret while it waits for approval.
CREATE TABLE sync_device (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    name           TEXT NOT NULL,
    x25519_public  BLOB NOT NULL,
    ed25519_public BLOB NOT NULL,
    x25519_wrapped BLOB NOT NULL,
    ed25519_wrapped BLOB NOT NULL,
    state          TEXT NOT NULL CHECK (state = 'unregistered' OR state = 'pending'
                                        OR state = 'approved' OR state = 'revoked'),
    pairing_secret BLOB,
    created_at     INTEGER NOT NULL
);
-- Devices of the same user this device trusts: approved by it, or by a trusted device
-- (checked signatures), or its own approver (checked with the pairing secret).
CREATE TABLE sync_trust (
    device_id  TEXT PRIMARY KEY,
    x25519     BLOB NOT NULL,
    ed25519    BLOB NOT NULL,
    name       TEXT NOT NULL,
    via        TEXT NOT NULL,
    added_at   INTEGER NOT NULL,
    revoked_at INTEGER
);
-- Per project: whether the tenant has it, the feed cursor (last applied seq and its op id),
-- the feed's identity, the key epoch, and a stop reason while sync of it is stopped.
CREATE TABLE sync_projects (
    project_id   TEXT PRIMARY KEY REFERENCES projects(id),
    remote       INTEGER NOT NULL DEFAULT 0,
    cursor       INTEGER NOT NULL DEFAULT 0,
    cursor_op    TEXT,
    generation   TEXT,
    epoch        INTEGER NOT NULL DEFAULT 1,
    last_sync_at INTEGER,
    stopped      TEXT
);
-- The last state of each item both sides agree on (the merge base), with its revision.
CREATE TABLE sync_items (
    item_id    TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    rev        INTEGER NOT NULL,
    last_seq   INTEGER NOT NULL,
    last_op    TEXT NOT NULL,
    base       TEXT NOT NULL
);
-- Items (and projects: item_id = project_id) changed here since they were last pushed,
-- written in the transaction of the change.
CREATE TABLE sync_dirty (
    item_id    TEXT PRIMARY KEY,
    project_id TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX sync_dirty_project ON sync_dirty(project_id);
-- Ops waiting for the tenant's answer: one per item, its payload sealed, with its state.
CREATE TABLE sync_outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    op_id           TEXT NOT NULL UNIQUE,
    project_id      TEXT NOT NULL,
    item_id         TEXT NOT NULL UNIQUE,
    base_rev        INTEGER NOT NULL,
    epoch           INTEGER NOT NULL,
    payload         BLOB NOT NULL,
    blobs           TEXT NOT NULL,
    tombstone       INTEGER NOT NULL,
    hold            INTEGER NOT NULL,
    deletes         INTEGER NOT NULL,
    sent_base       TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state = 'queued' OR state = 'sent' OR state = 'conflict'
                                         OR state = 'backoff' OR state = 'parked' OR state = 'confirm'),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX sync_outbox_project ON sync_outbox(project_id, seq);
-- Blobs the tenant has acknowledged holding.
CREATE TABLE sync_uploaded (
    blob_id TEXT PRIMARY KEY
) WITHOUT ROWID;
-- Changes from the tenant that were refused (tampered, foreign key epoch, replayed), kept
-- for the user; nothing of them was applied.
CREATE TABLE sync_refused (
    id         INTEGER PRIMARY KEY,
    project_id TEXT NOT NULL,
    item_id    TEXT NOT NULL,
    op_id      TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    code       TEXT NOT NULL,
    message    TEXT NOT NULL,
    at         INTEGER NOT NULL
);
-- Signed checkpoints of this device's audit chain (and the tenant's, at the same moment).
CREATE TABLE sync_anchors (
    kind       TEXT NOT NULL CHECK (kind = 'device' OR kind = 'server'),
    tenant_id  TEXT NOT NULL,
    chain_id   TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    head_hash  TEXT NOT NULL,
    signed_at  TEXT NOT NULL,
    server_key TEXT NOT NULL,
    signature  TEXT NOT NULL,
    PRIMARY KEY (kind, chain_id, seq, signed_at)
);
