-- purge_sessions: delete the sessions that expired before 2026-01-01.

-- name: CountScope :one
SELECT count(*)
FROM sessions AS s
WHERE s.expires_at < '2026-01-01';

-- name: ScopePage :many
SELECT s.id, s.tenant
FROM sessions AS s
WHERE s.expires_at < '2026-01-01' AND s.id > sqlc.arg(after_id)::bigint
ORDER BY s.id
LIMIT sqlc.arg('limit');

-- name: Apply :execrows
-- A delete needs only the key. The condition is repeated so that a session
-- extended since the page was read is not deleted.
DELETE FROM sessions
WHERE id = ANY(sqlc.arg(id)::bigint[]) AND expires_at < '2026-01-01';

-- name: RevertRead :many
-- The whole row (sqlc returns the table's struct, Session): the before-image
-- a revert inserts back. FOR UPDATE holds it until the batch commits, so the
-- image is the version Apply deletes, not one another session changed since.
SELECT *
FROM sessions
WHERE id = ANY(sqlc.arg(id)::bigint[])
FOR UPDATE;

-- name: RevertDelete :execrows
-- A revert inserts the deleted rows back, one array per column, named as the
-- columns are. Nullable columns bind NULL elements.
INSERT INTO sessions (id, tenant, user_id, token, expires_at, meta)
SELECT * FROM ROWS FROM (unnest(sqlc.arg(id)::bigint[]), unnest(sqlc.arg(tenant)::text[]),
    unnest(sqlc.arg(user_id)::bigint[]), unnest(sqlc.arg(token)::text[]),
    unnest(sqlc.arg(expires_at)::timestamptz[]), unnest(sqlc.arg(meta)::jsonb[]))
    AS v (id, tenant, user_id, token, expires_at, meta);
