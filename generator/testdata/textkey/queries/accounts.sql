-- name: CountScope :one
SELECT count(*) FROM accounts;

-- name: ScopePage :many
SELECT email, plan, note FROM accounts WHERE email > sqlc.arg(after_email)::text ORDER BY email LIMIT sqlc.arg('limit')::bigint;

-- name: Apply :execrows
UPDATE accounts AS a SET note = v.note
FROM ROWS FROM (unnest(sqlc.arg(email)::text[]), unnest(sqlc.arg(note)::text[])) AS v (email, note)
WHERE a.email = v.email AND a.note IS DISTINCT FROM v.note;
