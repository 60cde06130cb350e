-- fix_roles: set users.role to the role of the user's latest grant.
--
-- A backfill's query set has three roles, found by name:
--   CountScope (:one)      how many rows are in scope (preflight and ETA);
--   ScopePage  (:many)     the rows in scope after a cursor, in key order, LIMIT n;
--   Apply      (:execrows) the write for one batch, guarded so that a row
--                          already changed is not changed again.

-- name: CountScope :one
SELECT count(*)
FROM users AS u
JOIN LATERAL (
    SELECT g.role FROM role_grants AS g
    WHERE g.user_id = u.id
    ORDER BY g.granted_at DESC, g.id DESC
    LIMIT 1
) AS latest ON true
WHERE u.created_at < '2026-01-01';

-- name: ScopePage :many
SELECT u.id, u.role, u.tenant, latest.role AS granted_role
FROM users AS u
JOIN LATERAL (
    SELECT g.role FROM role_grants AS g
    WHERE g.user_id = u.id
    ORDER BY g.granted_at DESC, g.id DESC
    LIMIT 1
) AS latest ON true
WHERE u.created_at < '2026-01-01'
  AND u.id > sqlc.arg(after_id)::bigint
ORDER BY u.id
LIMIT sqlc.arg('limit');

-- name: Apply :execrows
UPDATE users AS u
SET role = v.role
FROM ROWS FROM (unnest(sqlc.arg(id)::bigint[]), unnest(sqlc.arg(role)::text[])) AS v (id, role)
WHERE u.id = v.id
  AND u.role IS DISTINCT FROM v.role;

-- name: RevertRead :many
-- For revert (reversible: true): the current value of each field the backfill
-- sets, for the given keys, as plain columns (a NULL stays NULL), locked until
-- the batch commits.
SELECT u.id, u.role
FROM users AS u
WHERE u.id = ANY(sqlc.arg(id)::bigint[])
ORDER BY u.id
FOR UPDATE;
