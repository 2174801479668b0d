-- 5: audit events stored compactly. Every authenticated request appends an event, so its bytes
-- add up: the strings that repeat (tenant, user, action, resource, address, user agent) are
-- stored once in `audit_strings` and referenced by number, the result as a number, the hash
-- as 32 bytes instead of 64 hex characters, and `prev_hash` not at all where it is the previous
-- event's hash (always, in an intact chain; the first event keeps its genesis hash). The
-- view `audit_events` shows every event exactly as before, so the chain's encoding, its
-- verification and the exports do not change; tampering with `audit_log` is detected the same
-- way (a changed or deleted event no longer chains).
CREATE TABLE audit_strings (
    id INTEGER PRIMARY KEY,
    s TEXT NOT NULL UNIQUE
);
INSERT OR IGNORE INTO audit_strings (s)
    SELECT tenant_id FROM audit_events UNION SELECT user FROM audit_events
    UNION SELECT action FROM audit_events UNION SELECT resource FROM audit_events
    UNION SELECT ip_address FROM audit_events UNION SELECT user_agent FROM audit_events;
CREATE TABLE audit_log (
    tenant INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    ts_us INTEGER NOT NULL,
    user INTEGER NOT NULL,
    action INTEGER NOT NULL,
    resource INTEGER NOT NULL,
    ip INTEGER NOT NULL,
    agent INTEGER NOT NULL,
    -- 0 success, 1 failure, 2 denied
    result INTEGER NOT NULL,
    -- NULL when empty
    detail TEXT,
    v INTEGER NOT NULL,
    -- NULL when it is the hash of event seq - 1
    prev BLOB,
    hash BLOB NOT NULL,
    PRIMARY KEY (tenant, seq)
) WITHOUT ROWID;
INSERT INTO audit_log
    SELECT
        (SELECT id FROM audit_strings WHERE s = e.tenant_id),
        e.seq,
        e.ts_us,
        (SELECT id FROM audit_strings WHERE s = e.user),
        (SELECT id FROM audit_strings WHERE s = e.action),
        (SELECT id FROM audit_strings WHERE s = e.resource),
        (SELECT id FROM audit_strings WHERE s = e.ip_address),
        (SELECT id FROM audit_strings WHERE s = e.user_agent),
        CASE e.result WHEN 'success' THEN 0 WHEN 'failure' THEN 1 WHEN 'denied' THEN 2 ELSE 9 END,
        NULLIF(e.detail, ''),
        e.v,
        CASE WHEN e.prev_hash IS (SELECT p.hash FROM audit_events p
                                  WHERE p.tenant_id = e.tenant_id AND p.seq = e.seq - 1)
             THEN NULL ELSE unhex(e.prev_hash) END,
        unhex(e.hash)
    FROM audit_events e;
DROP TABLE audit_events;
CREATE VIEW audit_events AS
    SELECT
        l.tenant AS tenant,
        l.user AS user_key,
        (SELECT s FROM audit_strings WHERE id = l.tenant) AS tenant_id,
        l.seq AS seq,
        l.ts_us AS ts_us,
        (SELECT s FROM audit_strings WHERE id = l.user) AS user,
        (SELECT s FROM audit_strings WHERE id = l.action) AS action,
        (SELECT s FROM audit_strings WHERE id = l.resource) AS resource,
        (SELECT s FROM audit_strings WHERE id = l.ip) AS ip_address,
        (SELECT s FROM audit_strings WHERE id = l.agent) AS user_agent,
        CASE l.result WHEN 0 THEN 'success' WHEN 1 THEN 'failure' WHEN 2 THEN 'denied'
             ELSE 'unknown' END AS result,
        COALESCE(l.detail, '') AS detail,
        l.v AS v,
        lower(hex(COALESCE(l.prev, (SELECT p.hash FROM audit_log p
                                     WHERE p.tenant = l.tenant AND p.seq = l.seq - 1)))) AS prev_hash,
        lower(hex(l.hash)) AS hash
    FROM audit_log l;
