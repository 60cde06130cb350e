package app_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/runonce/backfill/runtime/pgdb/pgtest"
)

func TestObserverListsApprovalsAndDryRuns(t *testing.T) {
	t.Parallel()
	x, _ := executed(t)
	digest := pgtest.Query(t, x.db, "SELECT DISTINCT digest FROM backfill.approvals")
	as := func(args ...string) string {
		t.Helper()
		return x.cli(append(args, "--database-url", x.observer)...)
	}

	out := as("approvals")
	require.Regexp(t, `(?m)^ID\s+BACKFILL\s+DIGEST\s+APPROVER\s+BY\s+PURPOSE`, out)
	require.Regexp(t, `(?m)^\d+\s+fix_roles\s+`+digest[:16]+`\s+alice\s+t_alice_`+x.suffix+`\s+execute\s+demo\s+-\s+\S+\s+\S+\s+reviewed by alice$`, out)
	require.Contains(t, out, "reviewed by bob")
	var approvals []struct {
		Backfill, Digest, Approver, Statement string
	}
	require.NoError(t, json.Unmarshal([]byte(as("approvals", "--digest", "sha256:"+digest, "--backfill", "fix_roles", "--output", "json")), &approvals))
	require.Len(t, approvals, 2)
	require.Equal(t, "bob", approvals[0].Approver, "newest first")
	require.Equal(t, digest, approvals[1].Digest)
	require.NotEmpty(t, approvals[1].Statement)
	require.Equal(t, "[]\n", as("approvals", "--backfill", "other", "--json"))
	require.Equal(t, "[]\n", as("approvals", "--digest", "00", "--json"))

	out = as("dry-runs", "fix_roles", "--digest", digest[:16])
	require.Regexp(t, `(?m)^ID\s+BACKFILL\s+DIGEST\s+PARAMS\s+DATABASE\s+MATCHED\s+WILL CHANGE\s+VIOLATIONS\s+BY\s+SAVED$`, out)
	require.Regexp(t, `(?m)^\d+\s+fix_roles\s+`+digest[:16]+`\s+-\s+`+x.name+`\s+1000\s+333\s+0\s+t_runner_`+x.suffix+`\s+\S+$`, out)
	var dryRuns []struct {
		ID         int64  `json:"id"`
		Digest     string `json:"digest"`
		Matched    int64  `json:"matched"`
		WillChange int64  `json:"will_change"`
		CreatedBy  string `json:"created_by"`
	}
	require.NoError(t, json.Unmarshal([]byte(as("dry-runs", "--output", "json")), &dryRuns))
	require.Len(t, dryRuns, 1)
	require.Equal(t, int64(333), dryRuns[0].WillChange)
	require.Equal(t, "t_runner_"+x.suffix, dryRuns[0].CreatedBy)
	require.Equal(t, "[]\n", as("dry-runs", "other", "--json"))

	res := runBinary(t, nil, cliBin, "dry-runs", "--output", "yaml", "--database-url", x.observer)
	require.Equal(t, 2, res.code, res.stderr)
}
