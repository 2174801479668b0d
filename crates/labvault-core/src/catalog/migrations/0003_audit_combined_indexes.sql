-- 3: composite indexes for the two common combined audit queries ("what did this user do of
-- this kind", "which actions of this kind were denied"), which would otherwise scan one index
-- and filter by the other column.
CREATE INDEX audit_result_action_ts ON audit_events(result, action, ts);
CREATE INDEX audit_user_action_ts ON audit_events(user, action, ts);
