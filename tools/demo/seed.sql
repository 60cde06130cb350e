-- Demo data for fix_roles: 1,200 users, 1,000 of them created before
-- 2026-01-01 (in scope). Each has one or two grants; the latest grant of
-- every third user disagrees with users.role, as a bad release left it.
INSERT INTO app_settings (key, value) VALUES ('env', 'demo');

INSERT INTO users (id, email, role, tenant, created_at)
SELECT i,
       'user' || i || '@example.com',
       CASE WHEN i % 3 = 0 THEN 'member' ELSE (ARRAY['admin', 'editor', 'viewer'])[1 + i % 3] END,
       (ARRAY['acme', 'globex', 'initech'])[1 + i % 3],
       CASE WHEN i <= 1000 THEN timestamptz '2025-01-01' + i * interval '5 hours'
            ELSE timestamptz '2026-02-01' + i * interval '1 hour' END
FROM generate_series(1, 1200) AS i;

-- An older grant for every even user, which the backfill must ignore.
INSERT INTO role_grants (user_id, role, granted_at)
SELECT i, 'viewer', timestamptz '2024-06-01'
FROM generate_series(2, 1200, 2) AS i;

-- The latest grant: equal to users.role except for every third user.
INSERT INTO role_grants (user_id, role, granted_at)
SELECT i,
       CASE WHEN i % 3 = 0 THEN 'editor' ELSE (ARRAY['admin', 'editor', 'viewer'])[1 + i % 3] END,
       timestamptz '2025-06-01' + i * interval '1 minute'
FROM generate_series(1, 1200) AS i;
