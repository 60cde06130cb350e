-- fill_nicknames: populate the new nullable columns profiles.nickname and
-- profiles.points from the legacy free-text columns. Both columns can be NULL,
-- before and after: a blank legacy nickname becomes NULL, not ''.

-- name: CountScope :one
SELECT count(*)
FROM profiles AS p;

-- name: ScopePage :many
SELECT p.id, p.tenant, p.nickname, p.points, p.legacy_nick, p.legacy_points
FROM profiles AS p
WHERE p.id > sqlc.arg(after_id)::bigint
ORDER BY p.id
LIMIT sqlc.arg('limit');

-- name: Apply :execrows
-- A NULL element of an array writes NULL; IS DISTINCT FROM treats NULL as a
-- value, so a row that already holds the change is not written again.
UPDATE profiles AS p
SET nickname = v.nickname, points = v.points
FROM ROWS FROM (unnest(sqlc.arg(id)::bigint[]), unnest(sqlc.arg(nickname)::text[]), unnest(sqlc.arg(points)::integer[]))
     AS v (id, nickname, points)
WHERE p.id = v.id
  AND (p.nickname IS DISTINCT FROM v.nickname OR p.points IS DISTINCT FROM v.points);

-- name: RevertRead :many
-- The columns exactly as the table holds them (no coalesce), so that sqlc
-- reads them as pgtype.Text and pgtype.Int4 and a NULL stays NULL.
SELECT p.id, p.nickname, p.points
FROM profiles AS p
WHERE p.id = ANY(sqlc.arg(id)::bigint[])
ORDER BY p.id
FOR UPDATE;
