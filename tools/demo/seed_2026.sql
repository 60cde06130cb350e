-- Demo data for the parts after fix_roles: a release in March 2026 granted
-- every seventh user a new role that users.role never got. The users
-- created in 2026 (ids 1001 to 1200, which fix_roles left alone) still have
-- the first release's mistake too (every third one, all of tenant acme).
INSERT INTO role_grants (user_id, role, granted_at)
SELECT i,
       CASE i % 3 WHEN 0 THEN 'viewer' WHEN 1 THEN 'admin' ELSE 'editor' END,
       timestamptz '2026-03-30' + i * interval '1 minute'
FROM generate_series(7, 1200, 7) AS i;
