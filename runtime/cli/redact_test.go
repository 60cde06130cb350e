package cli

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRedactHidesPasswordsInConnectionURLs(t *testing.T) {
	t.Parallel()
	got := redact([]string{"--execute", "--database-url", "postgres://bob:s3cret@db:5432/app?sslmode=require",
		"--database-url=postgresql://amy:pw@db/app", "postgres://nopass@db/app", "plain"})
	require.Equal(t, []string{"--execute", "--database-url", "postgres://bob:REDACTED@db:5432/app?sslmode=require",
		"--database-url=postgresql://amy:REDACTED@db/app", "postgres://nopass@db/app", "plain"}, got)
	for _, a := range got {
		require.NotContains(t, a, "s3cret")
	}
}

func TestRedactConnStringHidesEveryFormOfPassword(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"host=db user=bob password=s3cret dbname=app":       "host=db user=bob password=REDACTED dbname=app",
		"password=s3cret host=db":                           "password=REDACTED host=db",
		"host=db password = 's3 cr\\'et' dbname=app":        "host=db password = REDACTED dbname=app",
		"host=db PASSWORD='unterminated s3cret":             "host=db PASSWORD=REDACTED",
		"host=db sslpassword=s3cret sslkey=/k":              "host=db sslpassword=REDACTED sslkey=/k",
		"postgres://db/app?sslmode=require&password=s3cret": "postgres://db/app?sslmode=require&password=REDACTED",
		"postgres://bob:s3cret@h1:5432,h2:bad/app":          "postgres://bob:REDACTED@h1:5432,h2:bad/app",
		"postgres://bob:s3/cr?et@db/app":                    "postgres://REDACTED@db/app",
		"postgres://bob@db/app?application_name=x":          "postgres://bob@db/app?application_name=x",
		"host=db user=bob dbname=app":                       "host=db user=bob dbname=app",
		"postgres://bob:s3cret@db/app?sslpassword=k3y&x=1":  "postgres://bob:REDACTED@db/app?sslpassword=REDACTED&x=1",
		"fix_roles.log": "fix_roles.log",
		"postgresql://bob:%73%33cret@db/app?target=read-only": "postgresql://bob:REDACTED@db/app?target=read-only",
	} {
		require.Equal(t, want, redactConnString(in), in)
	}
}

func TestRedactReducesWebhooksToSchemeAndHost(t *testing.T) {
	t.Parallel()
	got := redact([]string{"--alert-webhook", "https://hooks.slack.com/services/T0/B0/s3cretpath?token=s3cretq",
		"--alert-webhook=https://user:s3cretpw@alerts.example.com:8443/hook", "--alert-webhook", "not a url"})
	require.Equal(t, []string{"--alert-webhook", "https://hooks.slack.com",
		"--alert-webhook=https://alerts.example.com:8443", "--alert-webhook", "REDACTED"}, got)
}

func TestAlertCommandIsRecordedAsGivenUnlessItHoldsASecret(t *testing.T) {
	t.Parallel()
	kept := []string{
		"notify-oncall --channel backfills",
		"curl -fsS -X POST -H 'Content-Type: application/json' --data @- https://alerts.example.com/backfill",
		`curl -H "Authorization: Bearer $ALERT_TOKEN" --data @- https://alerts.example.com/hook`,
		"notify --token ${NOTIFY_TOKEN} --to ops",
		"/opt/app2/bin/notify_v2_production --backfill fix_roles",
		"logger -t backfill",
	}
	for _, cmd := range kept {
		require.Empty(t, secretsIn(cmd), cmd)
		require.Equal(t, []string{"--alert-command", cmd}, redact([]string{"--alert-command", cmd}), cmd)
	}
	secret := map[string]string{
		"notify --token s3cr3t-value":                                                              "s3cr3t-value",
		"notify --api-key=k3y-value":                                                               "k3y-value",
		"API_KEY=k3y-value notify":                                                                 "k3y-value",
		`curl -H "Authorization: Bearer abc.def.ghi" https://x.example.com`:                        "abc.def.ghi",
		"curl -H 'X-Auth-Token: t0k3n' https://x.example.com":                                      "t0k3n",
		"curl -u admin:hunter2 https://x.example.com":                                              "admin:hunter2",
		"curl https://admin:hunter2@x.example.com/hook":                                            "hunter2",
		"curl https://x.example.com/hook?token=qs3cret":                                            "qs3cret",
		"curl -X POST https://hooks.slack.com/services/T0AAA1111/B0BBB2222/abcDEF123ghiJKL456mnoP": "abcDEF123ghiJKL456mnoP",
		"notify sk9f8E7d6C5b4A39281xyz":                                                            "sk9f8E7d6C5b4A39281xyz",
		"notify 3f2a9c4e7b1d8e6f0a5c3b9d":                                                          "3f2a9c4e7b1d8e6f0a5c3b9d",
	}
	for cmd, token := range secret {
		require.Contains(t, secretsIn(cmd), token, cmd)
		for _, a := range redact([]string{"--alert-command=" + cmd}) {
			require.NotContains(t, a, token, cmd)
		}
		require.Equal(t, []string{"--alert-command", "REDACTED"}, redact([]string{"--alert-command", cmd}))
	}
}

func TestAlertWebhookComesFromTheFlagThenTheFileThenTheEnvironment(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "webhook")
	require.NoError(t, os.WriteFile(file, []byte("https://file.example.com/s3cret\n"), 0o600))
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == webhookEnv {
				return v
			}
			return ""
		}
	}
	hook, err := resolveWebhook("https://flag.example.com/a", "", env("https://env.example.com/b"))
	require.NoError(t, err)
	require.Equal(t, "https://flag.example.com/a", hook)
	hook, err = resolveWebhook("", file, env("https://env.example.com/b"))
	require.NoError(t, err)
	require.Equal(t, "https://file.example.com/s3cret", hook)
	hook, err = resolveWebhook("", "", env("https://env.example.com/b"))
	require.NoError(t, err)
	require.Equal(t, "https://env.example.com/b", hook)
	hook, err = resolveWebhook("", "", env(""))
	require.NoError(t, err)
	require.Empty(t, hook)

	_, err = resolveWebhook("https://flag.example.com/a", file, env(""))
	require.ErrorContains(t, err, "not both")
	_, err = resolveWebhook("", "", env("hooks.example.com/s3cret"))
	require.ErrorContains(t, err, "the alert webhook from BACKFILL_ALERT_WEBHOOK is not one http(s) URL")
	require.NotContains(t, err.Error(), "s3cret")
	_, err = resolveWebhook("", filepath.Join(t.TempDir(), "missing"), env(""))
	require.ErrorContains(t, err, "cannot read --alert-webhook-file")
}

func TestWebhookErrorsNeverQuoteTheURL(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1: net/http's error would quote the whole URL.
	hook := "http://127.0.0.1:1/hook/s3cretpath?token=s3cretq"
	err := post(hook, []byte("{}"))
	require.Error(t, err)
	require.Contains(t, err.Error(), "error posting to http://127.0.0.1:1")
	require.NotContains(t, err.Error(), "s3cret")
	var ue *url.Error
	require.False(t, errors.As(err, &ue))

	s := webhookSecrets(hook)
	require.Equal(t, "Post REDACTED: refused; REDACTED", s.scrub("Post "+hook+": refused; /hook/s3cretpath?token=s3cretq"))
	require.False(t, strings.Contains(s.scrub("path /hook/s3cretpath"), "s3cret"))
}
