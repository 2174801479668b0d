-- 4: the unlock-time retention pass finds candidates through this index instead of reading
-- every item.
CREATE INDEX items_lifecycle ON items(state, data_type, created_at);
