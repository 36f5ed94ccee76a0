package postgres

import (
	"context"
	"errors"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot"
	"github.com/tracevault/tracevault/snapshot/store"
)

// assertNoCompleteSnapshot checks that a failed backup left only a partial record.
func assertNoCompleteSnapshot(t *testing.T, repo *store.Repository, m *store.Manifest, err error, want []string) {
	t.Helper()
	if !errors.Is(err, snapshot.ErrPartial) {
		t.Fatalf("backup error %v, want a partial snapshot", err)
	}
	if m == nil || m.Status != store.StatusPartial {
		t.Fatalf("manifest %+v, want status partial", m)
	}
	for _, w := range want {
		if !strings.Contains(m.Error, w) {
			t.Errorf("recorded error %q lacks %q", m.Error, w)
		}
	}
	if latest, err := repo.Snapshot(testContext(t), "latest"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a complete snapshot is listed after a failed backup: %v, %v", latest, err)
	}
}

// TestBackupConnectionFailures: wrong password, unreachable host, missing database and a
// misspelt schema each fail the backup with the cause and the fix, and no snapshot is listed
// as complete.
func TestBackupConnectionFailures(t *testing.T) {
	env := devstack.Require(t)
	base, err := url.Parse(env.PGDSN)
	if err != nil {
		t.Fatal(err)
	}
	variant := func(f func(u *url.URL)) string {
		u := *base
		f(&u)
		return u.String()
	}
	for _, tc := range []struct {
		name    string
		dsn     string
		schemas []string
		want    []string
	}{
		{"wrong password", variant(func(u *url.URL) { u.User = url.UserPassword(u.User.Username(), "not-the-password") }), nil,
			[]string{"authentication failed", "fix the user or password in [postgres] dsn"}},
		{"unreachable host", variant(func(u *url.URL) { u.Host = "127.0.0.1:1" }), nil,
			[]string{"connection refused", "check host and port"}},
		{"missing database", variant(func(u *url.URL) { u.Path = "/" + devstack.ScratchName("it_pg_missing") }), nil,
			[]string{"does not exist", "fix the database name"}},
		{"missing schema", env.PGDSN, []string{"public", "no_such_schema"},
			[]string{"has no schema no_such_schema", "fix [postgres] schemas"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := openRepo(t)
			m, err := backup(t, repo, &Source{DSN: tc.dsn, Schemas: tc.schemas})
			assertNoCompleteSnapshot(t, repo, m, err, tc.want)
			if strings.Contains(m.Error, "not-the-password") {
				t.Errorf("the password leaked into the error: %s", m.Error)
			}
		})
	}
}

// stallingBackend holds the first data object's upload until released, so a test can act
// while a COPY is streaming.
type stallingBackend struct {
	store.Backend
	once     sync.Once
	started  chan struct{}
	released chan struct{}
}

func (b *stallingBackend) Put(ctx context.Context, name string, r io.Reader) (int64, error) {
	if strings.HasPrefix(name, "data/") {
		b.once.Do(func() {
			close(b.started)
			<-b.released
		})
	}
	return b.Backend.Put(ctx, name, r)
}

// TestBackupServerRestart: the server restarts after the snapshot was exported, either before
// the copy (the snapshot died with it) or while a COPY is streaming (its connection died). The
// backup must fail saying to take it again, never copy a later state under the old snapshot's
// name, and no snapshot is listed as complete.
func TestBackupServerRestart(t *testing.T) {
	devstack.Disruptive(t)
	env := devstack.Require(t)
	dsn := seededDatabase(t, env)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		if err := env.Start(ctx, "pg"); err != nil {
			t.Errorf("restart the stack's postgres: %v", err)
		}
	})
	restart := func(ctx context.Context) error {
		if err := env.Stop(ctx, "pg"); err != nil {
			return err
		}
		return env.Start(ctx, "pg")
	}
	for _, tc := range []struct {
		name        string
		duringCopy  bool
		wantMessage string
	}{
		{"before the copy", false, "the transaction that exported it is gone"},
		{"during a copy", true, "take the backup again"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			fs, err := store.NewFS(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			stall := &stallingBackend{Backend: fs, started: make(chan struct{}), released: make(chan struct{})}
			if !tc.duringCopy {
				close(stall.released)
			}
			repo, err := store.OpenBackend(ctx, stall, store.Options{Log: quiet})
			if err != nil {
				t.Fatal(err)
			}
			// During the copy: one worker and no pg_dump, so the stalled upload is a table's COPY.
			src := &Source{DSN: dsn, Parallel: 1, DataOnly: tc.duringCopy}
			if tc.duringCopy {
				restarted := make(chan error, 1)
				go func() {
					<-stall.started
					restarted <- restart(ctx)
					close(stall.released)
				}()
				defer func() {
					if err := <-restarted; err != nil {
						t.Errorf("restart during the copy: %v", err)
					}
				}()
			} else {
				src.exported = func(ctx context.Context, _ string) error { return restart(ctx) }
			}
			m, err := backup(t, repo, src)
			assertNoCompleteSnapshot(t, repo, m, err, []string{tc.wantMessage, "take the backup again"})
			t.Logf("recorded error: %s", m.Error)
		})
	}
}

// TestPGDumpOlderThanServer: an old pg_dump is refused before anything is copied, naming the
// client version to install; data_only takes the snapshot without it.
func TestPGDumpOlderThanServer(t *testing.T) {
	env := devstack.Require(t)
	dsn := seededDatabase(t, env)
	old := filepath.Join(t.TempDir(), "pg_dump")
	if err := os.WriteFile(old, []byte("#!/bin/sh\necho 'pg_dump (PostgreSQL) 12.22'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	repo := openRepo(t)
	m, err := backup(t, repo, &Source{DSN: dsn, PGDump: old})
	assertNoCompleteSnapshot(t, repo, m, err, []string{"pg_dump is version 12", "install postgresql-client-15", "data_only = true"})
	if len(m.Objects) != 0 {
		t.Errorf("%d objects stored before the version check failed", len(m.Objects))
	}
	m, err = backup(t, repo, &Source{DSN: dsn, PGDump: old, DataOnly: true})
	if err != nil {
		t.Fatalf("data-only backup: %v", err)
	}
	sec, err := ReadSection(m)
	if err != nil {
		t.Fatal(err)
	}
	if !sec.DataOnly || sec.PreData != nil || len(sec.Tables) < 8 {
		t.Errorf("data-only section: data_only=%v pre_data=%v tables=%d", sec.DataOnly, sec.PreData, len(sec.Tables))
	}
	if _, err := NewRestorer(RestoreOptions{DSN: env.PGDSN, Database: devstack.ScratchName("it_pg_x"), Log: quiet}).Plan(testContext(t), m); err == nil || !strings.Contains(err.Error(), "--tables") {
		t.Errorf("full restore of a data-only snapshot: %v, want a refusal pointing at --tables", err)
	}
}

// TestBackupGivesWayToSchemaChange: a migration's ALTER TABLE queues behind the snapshot's
// locks, and the workers' and pg_dump's own lock requests queue behind the ALTER. Instead of
// all three waiting on each other forever, the backup fails after LockWait saying why, and the
// ALTER then goes through.
func TestBackupGivesWayToSchemaChange(t *testing.T) {
	env := devstack.Require(t)
	dsn := seededDatabase(t, env)
	repo := openRepo(t)
	alterDone := make(chan error, 1)
	src := &Source{DSN: dsn, LockWait: 300 * time.Millisecond, exported: func(ctx context.Context, _ string) error {
		go func() {
			conn, err := pgx.Connect(context.Background(), dsn)
			if err != nil {
				alterDone <- err
				return
			}
			defer conn.Close(context.Background())
			_, err = conn.Exec(context.Background(), "ALTER TABLE users ADD COLUMN nickname text")
			alterDone <- err
		}()
		probe := dial(t, dsn)
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			var waiting int
			if err := probe.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'users'::regclass").Scan(&waiting); err != nil {
				return err
			}
			if waiting > 0 {
				return nil
			}
		}
		return errors.New("the ALTER TABLE never queued behind the snapshot")
	}}
	start := time.Now()
	m, err := backup(t, repo, src)
	assertNoCompleteSnapshot(t, repo, m, err, []string{"gave way", "take the backup again"})
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the backup took %s to give way, want about LockWait", d)
	}
	select {
	case err := <-alterDone:
		if err != nil {
			t.Errorf("the ALTER TABLE failed: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the ALTER TABLE is still blocked after the backup gave way")
	}
}
