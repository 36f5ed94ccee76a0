package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func exampleFile(t *testing.T) string {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(self), "..", "config.example.toml")
}

func TestExampleConfigIsValid(t *testing.T) {
	cfg, err := Load(exampleFile(t))
	if err != nil {
		t.Fatalf("config.example.toml must validate: %v", err)
	}
	if cfg.Storage.BlockSize != 8<<20 || cfg.Jobs[0].Timeout.D().Hours() != 2 || cfg.Jobs[1].CatchUp != "once" {
		t.Errorf("example decoded to unexpected values: %+v", cfg)
	}
}

const minimal = `
[storage]
url = "file:///tmp/repo"
[postgres]
dsn = "postgres://u@127.0.0.1:5432/db"
[clickhouse]
addresses = ["127.0.0.1:9000"]
http_addresses = ["127.0.0.1:8123"]
[zookeeper]
servers = ["127.0.0.1:2181"]
`

// TestProblems checks that each kind of mistake is reported with the right key and line.
func TestProblems(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []Problem // Key, Line and a fragment of Message
	}{
		{
			name: "unknown key, bad cron and bad URL are three problems",
			doc: `[storage]
url = "s3://bucket"
colour = "blue"
[[jobs]]
name = "nightly"
schedule = "61 * * * *"
action = "backup"
[clickhouse]
addresses = ["127.0.0.1:9000"]
http_addresses = ["127.0.0.1:8123"]
[postgres]
dsn = "postgres://u@h/db"
[zookeeper]
servers = ["127.0.0.1:2181"]
`,
			want: []Problem{
				{Key: "storage.url", Line: 2, Message: "unsupported scheme"},
				{Key: "storage.colour", Line: 3, Message: "unknown key"},
				{Key: "jobs[0].schedule", Line: 6, Message: "bad cron expression"},
			},
		},
		{
			name: "missing required values",
			doc:  "[web]\nlisten = \"127.0.0.1:1\"\n[[jobs]]\nschedule = \"@daily\"\naction = \"backup\"\n",
			want: []Problem{
				{Key: "storage.url", Line: 0, Message: "required"},
				{Key: "jobs[0].name", Line: 3, Message: "required"},
				{Key: "postgres.dsn", Message: "required because"},
				{Key: "clickhouse.addresses", Message: "required because"},
				{Key: "clickhouse.http_addresses", Message: "required in logical mode"},
				{Key: "zookeeper.servers", Message: "required because"},
			},
		},
		{
			name: "wrong type names the key and line",
			doc:  minimal + "[storage.encryption]\nrecipients = \"age1\"\n",
			want: []Problem{{Key: "storage.encryption.recipients", Line: 12, Message: "is a TOML string but must be a list of strings"}},
		},
		{
			name: "type errors are reported per key and the rest is still checked",
			doc: `[storage]
url = "ftp://bucket"
block_size = "8 parsecs"
[clickhouse]
addresses = ["127.0.0.1:9000"]
http_addresses = ["127.0.0.1:8123"]
parallel = "two"
colour = "blue"
[postgres]
dsn = "postgres://u@h/db"
schemas = [
  1,
  2,
]
[zookeeper]
servers = ["127.0.0.1:2181"]
[[jobs]]
name = "a"
schedule = "61 * * * *"
action = "backup"
[[jobs]]
name = "b"
schedule = 5
action = "backup"
`,
			want: []Problem{
				{Key: "storage.url", Line: 2, Message: "unsupported scheme"},
				{Key: "storage.block_size", Line: 3, Message: "not a size"},
				{Key: "clickhouse.parallel", Line: 7, Message: "must be an integer"},
				{Key: "clickhouse.colour", Line: 8, Message: "unknown key"},
				{Key: "postgres.schemas", Line: 12, Message: "must be a string"},
				{Key: "jobs[0].schedule", Line: 19, Message: "bad cron expression"},
				{Key: "jobs[1].schedule", Line: 23, Message: "must be a string"},
			},
		},
		{
			name: "verify sample",
			doc:  minimal + "[verify]\nsample = \"10 percent\"\n",
			want: []Problem{{Key: "verify.sample", Line: 12, Message: `give a percentage such as "10%"`}},
		},
		{
			name: "langfuse replay",
			doc:  minimal + "[langfuse]\nurl = \"ftp://langfuse\"\nreplay_batch = 5000\nreplay_margin = \"-1m\"\n",
			want: []Problem{
				{Key: "blobs.url", Line: 0, Message: "required because langfuse.url is set"},
				{Key: "langfuse.admin_api_key", Line: 11, Message: "required with langfuse.url"},
				{Key: "langfuse.url", Line: 12, Message: "not an http(s) URL"},
				{Key: "langfuse.replay_margin", Line: 14, Message: "out of range"},
				{Key: "langfuse.replay_batch", Line: 13, Message: "out of range 1..1000"},
			},
		},
		{
			name: "bad duration and size",
			doc:  strings.Replace(minimal, "[postgres]", "block_size = \"8 parsecs\"\n[postgres]", 1),
			want: []Problem{{Key: "storage.block_size", Line: 4, Message: "not a size"}},
		},
		{
			name: "second job: action, only, catch_up and duplicate name",
			doc: minimal + `[[jobs]]
name = "a"
schedule = "@hourly"
action = "backup"
[[jobs]]
name = "a"
schedule = "*/5 * * * * *"
action = "vacuum"
only = ["redis"]
catch_up = "twice"
`,
			want: []Problem{
				{Key: "jobs[1].name", Line: 16, Message: "already the name"},
				{Key: "jobs[1].action", Line: 18, Message: "allowed: backup, prune, verify, zk-record"},
				{Key: "jobs[1].only[0]", Line: 19, Message: "not a source"},
				{Key: "jobs[1].only", Line: 19, Message: "only applies"},
				{Key: "jobs[1].catch_up", Line: 20, Message: "not allowed"},
			},
		},
		{
			name: "azure container and addresses",
			doc: `[storage]
url = "azblob://Bad_Container/p"
[clickhouse]
addresses = ["localhost"]
mode = "freeze"
`,
			want: []Problem{
				{Key: "storage.url", Line: 2, Message: "not a valid Azure container name"},
				{Key: "storage.account_name", Line: 1, Message: "required for azblob"},
				{Key: "clickhouse.addresses[0]", Line: 4, Message: "not host:port"},
				// freeze mode without data_path uses the servers' own paths: no problem.
			},
		},
		{
			name: "missing environment variable for a secret",
			doc:  strings.Replace(minimal, `dsn = "postgres://u@127.0.0.1:5432/db"`, `dsn = "env:TRACEVAULT_TEST_SURELY_UNSET"`, 1),
			want: []Problem{{Key: "postgres.dsn", Line: 5, Message: "TRACEVAULT_TEST_SURELY_UNSET is not set"}},
		},
		{
			name: "recipients without identity_file (write-only) is refused",
			doc:  minimal + "[storage.encryption]\nrecipients = [\"" + testRecipient + "\"]\n",
			want: []Problem{{Key: "storage.encryption.identity_file", Line: 11, Message: "write-only set-ups are not supported"}},
		},
		{
			name: "identity_file without recipients would write plaintext",
			doc:  minimal + "[storage.encryption]\nidentity_file = \"/etc/tracevault/key.txt\"\n",
			want: []Problem{{Key: "storage.encryption.recipients", Line: 11, Message: "unencrypted objects"}},
		},
		{
			name: "passphrase with an identity_file",
			doc:  minimal + "[storage.encryption]\nidentity_file = \"/k.txt\"\npassphrase = \"p\"\n",
			want: []Problem{{Key: "storage.encryption.passphrase", Line: 13, Message: "goes alone"}},
		},
		{
			name: "retention with every keep rule 0 would forget everything",
			doc:  minimal + "[retention]\nkeep_last = 0\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\nmin_age = \"1h\"\n",
			want: []Problem{{Key: "retention.keep_last", Line: 12, Message: "forget every snapshot"}},
		},
		{
			name: "point-in-time recovery needs the schema and a valid slot name",
			doc:  "[storage]\nurl = \"file:///tmp/r\"\n[postgres]\ndsn = \"postgres://u@h/db\"\npitr = true\ndata_only = true\npitr_slot = \"Bad-Name\"\n",
			want: []Problem{
				{Key: "postgres.pitr", Line: 5, Message: "data_only = false"},
				{Key: "postgres.pitr_slot", Line: 7, Message: "replication slot name"},
			},
		},
		{
			name: "a restore's index-build memory and workers",
			doc:  "[storage]\nurl = \"file:///tmp/r\"\n[postgres]\ndsn = \"postgres://u@h/db\"\nrestore_maintenance_work_mem = \"512KiB\"\nrestore_parallel_maintenance_workers = 65\nrestore_split_table_size = \"4KiB\"\n",
			want: []Problem{
				{Key: "postgres.restore_maintenance_work_mem", Line: 5, Message: "out of range 1MiB..1TiB"},
				{Key: "postgres.restore_split_table_size", Line: 7, Message: "or at least 1MiB"},
				{Key: "postgres.restore_parallel_maintenance_workers", Line: 6, Message: "out of range 0..64"},
			},
		},
		{
			name: "a new point-in-time chain at most every minute",
			doc:  "[storage]\nurl = \"file:///tmp/r\"\n[postgres]\ndsn = \"postgres://u@h/db\"\npitr = true\npitr_chain_interval = \"10s\"\n",
			want: []Problem{{Key: "postgres.pitr_chain_interval", Line: 6, Message: "at least 1m"}},
		},
		{
			name: "chains with each backup set only with point-in-time recovery",
			doc:  "[storage]\nurl = \"file:///tmp/r\"\n[postgres]\ndsn = \"postgres://u@h/db\"\npitr_chain_with_backup = true\n",
			want: []Problem{{Key: "postgres.pitr_chain_with_backup", Line: 5, Message: "needs pitr = true"}},
		},
		{
			name: "blobs: bad container name and two Azure credentials",
			doc:  minimal + "[blobs]\nurl = \"azblob://Bad_Name\"\naccount_key = \"k\"\nsas_token = \"s\"\n",
			want: []Problem{
				{Key: "blobs.url", Line: 12, Message: "not a valid Azure container name"},
				{Key: "blobs.connection_string", Line: 11, Message: "only one of"},
				{Key: "blobs.account_name", Line: 11, Message: "required for azblob"},
			},
		},
		{
			name: "blobs named by a job needs a url",
			doc:  minimal + "[[jobs]]\nname = \"b\"\nschedule = \"@hourly\"\naction = \"backup\"\nonly = [\"blobs\"]\n",
			want: []Problem{{Key: "blobs.url", Message: "names blobs"}},
		},
		{
			name: "prune refused with append_only, naming the separate identity",
			doc: "[storage]\nurl = \"file:///tmp/repo\"\nappend_only = true\n" +
				"[[jobs]]\nname = \"p\"\nschedule = \"@daily\"\naction = \"prune\"\n",
			want: []Problem{{Key: "jobs[0].action", Line: 7, Message: "separate identity"}},
		},
		{
			name: "web: secure_cookies and trusted_proxies are checked",
			doc:  "[web]\nsecure_cookies = \"yes\"\ntrusted_proxies = [\"10.0.0.0/8\", \"ingress-nginx\"]\n" + minimal,
			want: []Problem{
				{Key: "web.secure_cookies", Line: 2, Message: "\"always\""},
				{Key: "web.trusted_proxies[1]", Line: 3, Message: "not a CIDR"},
			},
		},
		{
			name: "syntax error",
			doc:  "[storage\nurl = 1\n",
			want: []Problem{{Line: 1, Message: "TOML syntax error"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("test.toml", []byte(tt.doc))
			var got Problems
			if !errors.As(err, &got) {
				t.Fatalf("want Problems, got %v", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("want %d problems, got %d:\n%v", len(tt.want), len(got), got)
			}
			for _, w := range tt.want {
				if !containsProblem(got, w) {
					t.Errorf("missing problem %+v in:\n%v", w, got)
				}
			}
		})
	}
}

// testRecipient is a valid age X25519 recipient whose identity was thrown away.
const testRecipient = "age13z0c748xuuk2ywuqgflw50gddnejsp03008agavkt6m4tnq4my3qdesprn"

func containsProblem(ps Problems, w Problem) bool {
	for _, p := range ps {
		if p.Key == w.Key && p.Line == w.Line && strings.Contains(p.Message, w.Message) {
			return true
		}
	}
	return false
}

func TestSecretsResolveFromEnvAndNeverPrint(t *testing.T) {
	t.Setenv("TV_TEST_DSN", "postgres://u:hunter2@127.0.0.1:5432/db")
	for _, ref := range []string{"env:TV_TEST_DSN", "${TV_TEST_DSN}"} {
		doc := strings.Replace(minimal, `dsn = "postgres://u@127.0.0.1:5432/db"`, `dsn = "`+ref+`"`, 1)
		cfg, err := Parse("t.toml", []byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if cfg.Postgres.DSN.Reveal() != os.Getenv("TV_TEST_DSN") {
			t.Errorf("%s resolved to %q", ref, cfg.Postgres.DSN.Reveal())
		}
		for _, shown := range []string{cfg.Postgres.DSN.String(), strings.TrimSpace(sprintAll(cfg.Postgres.DSN))} {
			if strings.Contains(shown, "hunter2") {
				t.Errorf("secret leaked: %q", shown)
			}
		}
	}
}

func TestSizeAndDuration(t *testing.T) {
	sizes := map[string]int64{"8MiB": 8 << 20, "512KiB": 512 << 10, "1GiB": 1 << 30, "1000": 1000, "2MB": 2e6}
	for in, want := range sizes {
		var s Size
		if err := s.UnmarshalText([]byte(in)); err != nil || int64(s) != want {
			t.Errorf("Size(%q) = %d, %v; want %d", in, s, err, want)
		}
	}
	for _, bad := range []string{"", "-1MiB", "eight", "8 parsecs"} {
		var s Size
		if err := s.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("Size(%q) accepted", bad)
		}
	}
	var d Duration
	if err := d.UnmarshalText([]byte("1h30m")); err != nil || d.D().Minutes() != 90 {
		t.Errorf("Duration(1h30m) = %v, %v", d.D(), err)
	}
}

// TestWebListenAnyFreePort: port 0 of [web] listen is any free port (serve logs which); every
// other address keeps its checks.
func TestWebListenAnyFreePort(t *testing.T) {
	base := "[storage]\nurl = \"file:///tmp/r\"\n[web]\nlisten = %q\n"
	if _, err := Parse("t.toml", []byte(fmt.Sprintf(base, "127.0.0.1:0"))); err != nil {
		t.Errorf("127.0.0.1:0: %v", err)
	}
	for _, bad := range []string{"127.0.0.1", "127.0.0.1:-1", "127.0.0.1:70000"} {
		if _, err := Parse("t.toml", []byte(fmt.Sprintf(base, bad))); err == nil || !strings.Contains(err.Error(), "web.listen") {
			t.Errorf("%s: %v, want a web.listen problem", bad, err)
		}
	}
}
