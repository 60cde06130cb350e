-- grant_quotas: every account on the pro plan gets at least a 100 GB storage
-- quota. An account without a quota row gets one (INSERT); one whose quota is
-- lower gets it raised (ON CONFLICT ... DO UPDATE); the rest are left alone.

-- name: CountScope :one
SELECT count(*)
FROM accounts AS a
WHERE a.plan = 'pro';

-- name: ScopePage :many
-- The current quota, NULL when the account has no quota row yet.
SELECT a.id, a.tenant, q.storage_gb
FROM accounts AS a
LEFT JOIN quotas AS q ON q.account_id = a.id
WHERE a.plan = 'pro' AND a.id > sqlc.arg(after_id)::bigint
ORDER BY a.id
LIMIT sqlc.arg('limit');

-- name: Apply :execrows
-- An upsert: the dry-run, info and REPORT.md say "will insert or update".
-- The WHERE of DO UPDATE leaves a quota that already holds the value alone.
INSERT INTO quotas (account_id, storage_gb)
SELECT * FROM ROWS FROM (unnest(sqlc.arg(id)::bigint[]), unnest(sqlc.arg(storage_gb)::integer[])) AS v (account_id, storage_gb)
ON CONFLICT (account_id) DO UPDATE SET storage_gb = excluded.storage_gb
WHERE quotas.storage_gb IS DISTINCT FROM excluded.storage_gb;

-- name: RevertRead :many
-- The quota as the table holds it, by account. A revert writes an older
-- value back through Apply, and deletes a row the run inserted (RevertInsert).
-- FOR UPDATE holds the rows until the batch commits.
SELECT q.account_id AS id, q.storage_gb
FROM quotas AS q
WHERE q.account_id = ANY(sqlc.arg(id)::bigint[])
FOR UPDATE;

-- name: RevertInsert :execrows
-- A revert deletes the quota rows the run inserted, where they still hold
-- what the run wrote.
DELETE FROM quotas
WHERE account_id = ANY(sqlc.arg(id)::bigint[]);
