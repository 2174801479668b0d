-- 5: small files stored as records of pack files (docs/vault-layout.md, "Packs").
ALTER TABLE item_versions ADD COLUMN pack_id TEXT;
ALTER TABLE item_versions ADD COLUMN pack_offset INTEGER;
ALTER TABLE item_versions ADD COLUMN pack_len INTEGER;
CREATE INDEX item_versions_pack ON item_versions(pack_id) WHERE pack_id IS NOT NULL;
