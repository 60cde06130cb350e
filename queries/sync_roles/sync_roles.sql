-- sync_roles: set users.role to the role of the user's latest grant, for the
-- users created before a cutoff date in the given tenants. The cutoff and
-- tenants are parameters (params: in backfill.yaml): the operator passes
-- them (--param cutoff=2026-08-01), the approvals pin them, and the binary
-- runs once per values, so extending the cutoff later needs a new approval
-- of the same binary, not a new backfill.
--
-- Both CountScope and ScopePage bind every parameter: together they are
-- the scope. Apply does not need them: it writes the changes the pages chose.

-- name: CountScope :one
SELECT count(*)
FROM users AS u
JOIN LATERAL (
    SELECT g.role FROM role_grants AS g
    WHERE g.user_id = u.id
    ORDER BY g.granted_at DESC, g.id DESC
    LIMIT 1
) AS latest ON true
WHERE u.created_at < sqlc.arg(cutoff)::date
  AND u.tenant = ANY(sqlc.arg(tenants)::text[]);

-- name: ScopePage :many
SELECT u.id, u.role, u.tenant, latest.role AS granted_role
FROM users AS u
JOIN LATERAL (
    SELECT g.role FROM role_grants AS g
    WHERE g.user_id = u.id
    ORDER BY g.granted_at DESC, g.id DESC
    LIMIT 1
) AS latest ON true
WHERE u.created_at < sqlc.arg(cutoff)::date
  AND u.tenant = ANY(sqlc.arg(tenants)::text[])
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
SELECT u.id, u.role
FROM users AS u
WHERE u.id = ANY(sqlc.arg(id)::bigint[])
ORDER BY u.id
FOR UPDATE;
