package zookeeper

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/store"
)

// Source records the ZooKeeper tree as part of a snapshot set.
type Source struct {
	Servers        []string
	Identity       string // digest "user:password"; empty: none (WithIdentity)
	SessionTimeout time.Duration
	Record         RecordOptions
	Log            *slog.Logger
}

// Section is the zookeeper part of a manifest.
type Section struct {
	RecordSummary
	// LastZxid is the ensemble's zxid when the walk ended, from srvr: the record is at least as
	// recent as MaxZxid and no more recent than LastZxid.
	LastZxid int64  `json:"last_zxid"`
	Object   string `json:"object"`
}

func (s *Source) Name() string { return "zookeeper" }

// Backup streams the record into the repository.
func (s *Source) Backup(ctx context.Context, w *snapshot.Writer) (any, error) {
	conn, err := Connect(ctx, s.Servers, s.SessionTimeout, s.Log, WithIdentity(s.Identity))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	pr, pw := io.Pipe()
	var sum RecordSummary
	go func() {
		var err error
		sum, err = Record(ctx, conn, s.Record, pw)
		pw.CloseWithError(err)
	}()
	obj, err := w.Put(ctx, store.ManifestObject{Kind: "zk-record"}, "", pr)
	pr.CloseWithError(err)
	if err != nil {
		return nil, fmt.Errorf("record zookeeper: %w", err)
	}
	sec := Section{RecordSummary: sum, Object: obj.ID}
	for _, h := range Health(ctx, s.Servers, Thresholds{}, s.SessionTimeout) {
		sec.LastZxid = max(sec.LastZxid, h.LastZxid)
	}
	return sec, nil
}
