package devstack_test

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/go-zookeeper/zk"
	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/internal/devstack"
)

// TestServicesAnswer checks each server of the stack with its own client, the way the product
// talks to it (ClickHouse replication is covered by demo's seed test).
func TestServicesAnswer(t *testing.T) {
	env := devstack.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"postgres 15", func(t *testing.T) {
			c, err := pgx.Connect(ctx, env.PGDSN)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			var v string
			if err := c.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil || !strings.HasPrefix(v, "15.") {
				t.Fatalf("server_version %q, %v; want 15.x", v, err)
			}
		}},
		{"zookeeper", func(t *testing.T) {
			c, _, err := zk.Connect([]string{env.ZK}, 5*time.Second, zk.WithLogInfo(false))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, _, err := c.Children("/"); err != nil {
				t.Fatalf("list /: %v", err)
			}
		}},
		{"azurite put and get", func(t *testing.T) {
			client, err := azblob.NewClientFromConnectionString(env.AzureConnectionString, nil)
			if err != nil {
				t.Fatal(err)
			}
			container := strings.ReplaceAll(devstack.ScratchName("it-stack"), "_", "-")
			if _, err := client.CreateContainer(ctx, container, nil); err != nil {
				t.Fatalf("create container: %v", err)
			}
			defer client.DeleteContainer(context.Background(), container, nil)
			want := bytes.Repeat([]byte("tracevault "), 1000)
			if _, err := client.UploadBuffer(ctx, container, "probe", want, nil); err != nil {
				t.Fatalf("put: %v", err)
			}
			resp, err := client.DownloadStream(ctx, container, "probe", nil)
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("got %d bytes (%v), want %d identical bytes", len(got), err, len(want))
			}
		}},
		{"ch-modern answers 26.x over native and HTTP", func(t *testing.T) {
			if env.CHModernNative == "" {
				t.Fatalf("%s/env has no STACK_CH_MODERN_NATIVE: ch-modern is not part of this stack", env.Dir)
			}
			// Debian's clickhouse-client 18.16 speaks the native protocol to it, as an operator would.
			host, port, _ := strings.Cut(env.CHModernNative, ":")
			out, err := exec.CommandContext(ctx, "clickhouse-client", "--host", host, "--port", port, "--query", "SELECT version()").CombinedOutput()
			if err != nil || !strings.HasPrefix(string(out), "26.") {
				t.Fatalf("clickhouse-client --port %s: %q, %v; want 26.x", port, out, err)
			}
			v, err := env.ModernQuery("SELECT version()")
			if err != nil || !strings.HasPrefix(v, "26.") {
				t.Fatalf("HTTP %s: %q, %v; want 26.x", env.CHModernHTTP, v, err)
			}
			// A new database there is Atomic, with a UUID: what the modern paths need.
			db := env.ModernDatabase(t, "it_stack")
			if got, err := env.ModernQuery("SELECT engine, uuid != toUUIDOrZero('') FROM system.databases WHERE name = '" + db + "'"); err != nil || got != "Atomic\t1" {
				t.Fatalf("database %s on ch-modern: %q, %v; want an Atomic database with a UUID", db, got, err)
			}
		}},
		{"status exits 0", func(t *testing.T) {
			cmd := exec.CommandContext(ctx, "bash", devstack.Script(), "status")
			cmd.Env = append(cmd.Environ(), "STACK_DIR="+env.Dir)
			out, err := cmd.CombinedOutput()
			if err != nil || strings.Count(string(out), " up ") != 7 {
				t.Fatalf("stack.sh status: %v\n%s", err, out)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}

// TestModernRestartKeepsData stops ch-modern the way `devstack.sh stop` does (ending its blocking
// query through the FIFO) and starts it again: it comes back on the same ports with its Atomic
// database, the table's UUID and its rows.
func TestModernRestartKeepsData(t *testing.T) {
	devstack.Disruptive(t)
	env := devstack.RequireModern(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	db := env.ModernDatabase(t, "it_restart")
	for _, q := range []string{
		"CREATE TABLE " + db + ".t (id UUID, at DateTime64(3), m Map(LowCardinality(String), String)) ENGINE = MergeTree ORDER BY id",
		"INSERT INTO " + db + ".t VALUES ('0f2b7f4e-1c1d-4d0a-9f47-5d0b5c7e9a11', '2026-07-01 12:00:00.123', {'k': 'v'})",
	} {
		if _, err := env.ModernQuery(q); err != nil {
			t.Fatal(err)
		}
	}
	state := func() string {
		t.Helper()
		out, err := env.ModernQuery("SELECT (SELECT toString(uuid) FROM system.tables WHERE database = '" + db + "' AND name = 't'), toString(tuple(*)) FROM " + db + ".t")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	before := state()
	if err := env.Stop(ctx, "ch-modern"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.ModernQuery("SELECT 1"); err == nil {
		t.Error("ch-modern still answers after devstack.sh stop")
	}
	if err := env.Start(ctx, "ch-modern"); err != nil {
		t.Fatal(err)
	}
	if after := state(); after != before {
		t.Errorf("after a restart: %q, want %q", after, before)
	}
	// tracevault checks some exports through the query log: it must survive a restart too.
	if _, err := env.ModernQuery("SYSTEM FLUSH LOGS"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.ModernQuery("SELECT count() FROM system.query_log"); err != nil {
		t.Errorf("after a restart, no query log: %v", err)
	}
}

// The contract (.stack/env) and the script's overrides share one namespace: a developer who
// sources the contract into their shell and then runs the script must reach the same stack.
// STACK_CH_MODERN_HTTP (host:port in the contract) was once also read as ch-modern's port.
func TestStatusWithContractInEnvironment(t *testing.T) {
	env := devstack.Require(t)
	script := "set -a; . " + env.Dir + "/env; set +a; bash " + devstack.Script() + " status"
	out, err := exec.Command("bash", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("status with .stack/env sourced: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), strings.TrimPrefix(env.CHModernHTTP, "127.0.0.1:")) {
		t.Errorf("status does not name ch-modern's HTTP port %s:\n%s", env.CHModernHTTP, out)
	}
}
