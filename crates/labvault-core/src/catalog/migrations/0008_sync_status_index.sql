-- Conflict siblings are rare: a partial index finds them without scanning every version, so
-- `sync status` and each sync pass stay fast on vaults of 100,000+ items.
CREATE INDEX item_versions_conflict ON item_versions(item_id) WHERE conflict = 1;
