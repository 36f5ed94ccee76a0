package stack_test

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

	"github.com/tracevault/tracevault/deploy/stack"
)

// TestServicesAnswer checks each server of the stack with its own client, the way the product
// talks to it (ClickHouse replication is covered by deploy/demo's seed test).
func TestServicesAnswer(t *testing.T) {
	env := stack.Require(t)
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
			container := strings.ReplaceAll(stack.ScratchName("it-stack"), "_", "-")
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
		{"status exits 0", func(t *testing.T) {
			out, err := exec.CommandContext(ctx, "bash", env.Script(), "status").CombinedOutput()
			if err != nil || strings.Count(string(out), " up ") != 6 {
				t.Fatalf("stack.sh status: %v\n%s", err, out)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}
