package demo

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/url"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/tracevault/tracevault/snapshot/blobs"
)

// Blobs is Langfuse's blob container for the demo: where Langfuse writes the raw event file
// each blob_storage_file_log row points at.
type Blobs struct {
	URL         string // azblob://container[/prefix] or file:///dir, as [blobs] url
	Credentials blobs.Credentials
}

// seedBlobs writes a file into the container for every path the demo's blob_storage_file_log
// references and the container lacks. Langfuse writes each file before its row, so a demo whose
// rows name absent files would look like a deployment that lost them (the backup's blob check
// says so). Files already there are left alone: seeding again writes only what is missing.
func seedBlobs(ctx context.Context, o Options, rows map[string]int64) error {
	c, err := blobs.OpenContainer(ctx, o.Blobs.URL, o.Blobs.Credentials, true)
	if err != nil {
		return fmt.Errorf("demo seed: open the blob container: %w", err)
	}
	conn, err := connect(ctx, o.ClickHouse[0], o)
	if err != nil {
		return err
	}
	defer conn.Close()
	q, err := conn.Query(ctx, fmt.Sprintf("SELECT DISTINCT bucket_path FROM %s.blob_storage_file_log", o.Database))
	if err != nil {
		return fmt.Errorf("demo seed: read %s.blob_storage_file_log: %w", o.Database, err)
	}
	want := map[string]bool{}
	for q.Next() {
		var p string
		if err := q.Scan(&p); err != nil {
			q.Close()
			return err
		}
		want[p] = true
	}
	q.Close()
	if err := q.Err(); err != nil {
		return err
	}
	// Paths carry the prefix of an azblob:// url below the container; names do not.
	prefix := ""
	if u, err := url.Parse(o.Blobs.URL); err == nil && u.Scheme == "azblob" && strings.Trim(u.Path, "/") != "" {
		prefix = strings.Trim(u.Path, "/") + "/"
	}
	for p := range want {
		if !strings.HasPrefix(p, prefix) {
			delete(want, p) // another part of the container
		}
	}
	if err := c.List(ctx, func(e blobs.Entry) error { delete(want, prefix+e.Name); return nil }); err != nil {
		return fmt.Errorf("demo seed: list %s: %w", c, err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for p := range want {
		g.Go(func() error {
			body := eventFile(o.Seed, p)
			sum := md5.Sum(body)
			if err := c.Put(gctx, strings.TrimPrefix(p, prefix), int64(len(body)), sum[:], bytes.NewReader(body)); err != nil {
				return fmt.Errorf("demo seed: write %s into %s: %w", p, c, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	rows["blobs:files"] += int64(len(want))
	return nil
}

// eventFile is the raw event Langfuse would have written at path: the same bytes for the same
// seed and path, 1 to 4 KiB.
func eventFile(seed uint64, path string) []byte {
	h := fnv.New64a()
	h.Write([]byte(path))
	r := rand.New(rand.NewPCG(seed, h.Sum64()))
	body, _ := json.Marshal(map[string]any{
		"path":  path,
		"type":  "trace-create",
		"input": sentence(r, 20, 120),
		"pad":   strings.Repeat("x", r.IntN(3000)),
	})
	return body
}
