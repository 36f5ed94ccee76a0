package blobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"strings"
	"time"

	"github.com/tracevault/tracevault/snapshot/store"
)

// FileLog finds Langfuse's blob_storage_file_log table and returns its name and the file paths
// its live rows reference (bucket_path), in increasing byte order; ErrNoFileLog when there is no
// such table.
type FileLog func(ctx context.Context) (table string, paths iter.Seq2[string, error], err error)

// ErrNoFileLog means the ClickHouse backed up has no blob_storage_file_log table.
var ErrNoFileLog = errors.New("no blob_storage_file_log table")

// Check is the consistency of the listing with ClickHouse's file log, read while the listing
// ran: rows whose file the listing lacks cannot be restored with their file (a gap to know of,
// not to hide); files no row references are expected for events ingested after ClickHouse's
// export, or written by other Langfuse features (media, exports).
type Check struct {
	Table                string   `json:"table,omitempty"`
	Skipped              string   `json:"skipped,omitempty"`
	Error                string   `json:"error,omitempty"`
	Files                int64    `json:"files"` // distinct paths the file log references
	Missing              int64    `json:"missing"`
	Unreferenced         int64    `json:"unreferenced"`
	MissingExamples      []string `json:"missing_examples,omitempty"`
	UnreferencedExamples []string `json:"unreferenced_examples,omitempty"`
}

const maxExamples = 10

// checker merges the file log's paths with the listing's names as both go by in order: memory
// stays constant whatever either holds.
type checker struct {
	log    FileLog
	prefix string // the container url's prefix, which file log paths carry and names do not
	res    Check

	started bool
	next    func() (string, error, bool)
	stop    func()
	cur     *string
}

func newChecker(log FileLog, prefix string) *checker {
	return &checker{log: log, prefix: prefix}
}

// urlPrefix is the path below the container of an azblob:// url, with a trailing slash.
func urlPrefix(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "azblob" || strings.Trim(u.Path, "/") == "" {
		return ""
	}
	return strings.Trim(u.Path, "/") + "/"
}

// start reads the whole file log into a spool before the listing begins, for two reasons. The
// check then holds the listing against rows committed before it began: Langfuse writes a file
// before its row, so each such file was there to be listed unless deleted since (a real gap),
// while a row committed after the listing passed its file's name would read as missing. And
// the query is over before the listing's pace (a large blob holds it for minutes) could keep
// its stream waiting past the server's send_timeout.
func (c *checker) start(ctx context.Context) {
	c.next, c.stop = func() (string, error, bool) { return "", nil, false }, func() {}
	table, paths, err := c.log(ctx)
	if err != nil {
		c.fail(err)
		return
	}
	c.res.Table = table
	sp, err := spoolPaths(paths)
	if err != nil {
		c.fail(err)
		return
	}
	next, stop := iter.Pull2(sp.paths())
	c.next, c.stop = next, func() { stop(); sp.Close() }
}

// pull advances the file log; false at its end or on an error, which the result records.
func (c *checker) pull() bool {
	for {
		p, err, ok := c.next()
		if !ok {
			c.cur = nil
			return false
		}
		if err != nil {
			c.fail(err)
			return false
		}
		if c.cur != nil && p == *c.cur {
			continue // several rows of one file
		}
		c.res.Files++
		c.cur = &p
		return true
	}
}

func (c *checker) fail(err error) {
	if errors.Is(err, ErrNoFileLog) {
		c.res.Skipped = err.Error()
	} else {
		c.res.Error = err.Error()
	}
	c.cur = nil
}

// begin reads the file log, once: before the listing, and again harmlessly on each use; false
// when there is no file log to check.
func (c *checker) begin(ctx context.Context) bool {
	if c.log == nil {
		return false
	}
	if !c.started {
		c.started = true
		c.start(ctx)
		c.pull()
	}
	return true
}

// observe takes the next listed name.
func (c *checker) observe(ctx context.Context, name string) error {
	if !c.begin(ctx) {
		return nil
	}
	full := c.prefix + name
	for c.cur != nil && *c.cur < full {
		c.missing(*c.cur)
		c.pull()
	}
	if c.cur != nil && *c.cur == full {
		c.pull()
		return nil
	}
	if c.res.Skipped == "" && c.res.Error == "" {
		c.res.Unreferenced++
		if len(c.res.UnreferencedExamples) < maxExamples {
			c.res.UnreferencedExamples = append(c.res.UnreferencedExamples, name)
		}
	}
	return nil
}

func (c *checker) missing(p string) {
	c.res.Missing++
	if len(c.res.MissingExamples) < maxExamples {
		c.res.MissingExamples = append(c.res.MissingExamples, p)
	}
}

// finish counts the file log's paths after the last listed name.
func (c *checker) finish(ctx context.Context) error {
	if !c.begin(ctx) {
		return nil
	}
	for c.cur != nil {
		c.missing(*c.cur)
		c.pull()
	}
	return nil
}

func (c *checker) result() *Check {
	if !c.started {
		return nil
	}
	c.stop()
	return &c.res
}

// SectionOf is a manifest's blob section, if it has one that reads.
func SectionOf(m *store.Manifest) (Section, bool) {
	var sec Section
	raw, ok := m.Sections[Name]
	return sec, ok && json.Unmarshal(raw, &sec) == nil
}

// Describe summarises a manifest's blob section for `show`: the container, the cut and the
// check result, so a gap between the file log and the container is seen, not just stored.
func Describe(m *store.Manifest) []string {
	sec, ok := SectionOf(m)
	if !ok {
		return nil
	}
	copied := ""
	if sec.Copied > 0 {
		copied = fmt.Sprintf(", %d of them copied server-side (%s)", sec.Copied, store.HumanBytes(sec.CopiedBytes))
	}
	out := []string{
		fmt.Sprintf("blobs    %s: %d blobs (%s), %d stored by this snapshot (%s)%s, %d new packs", sec.URL, sec.Blobs, store.HumanBytes(sec.Bytes), sec.NewBlobs, store.HumanBytes(sec.NewBytes), copied, sec.Packs),
		fmt.Sprintf("cut      listing started %s; newest blob %q modified %s", sec.Cut.Time.Format(time.RFC3339), sec.Cut.Newest, sec.Cut.NewestModified.Format(time.RFC3339)),
	}
	switch c := sec.Check; {
	case c == nil:
		out = append(out, "check    not run: no [clickhouse] configured")
	case c.Skipped != "":
		out = append(out, "check    skipped: "+c.Skipped)
	case c.Error != "":
		out = append(out, "check    FAILED to read the file log: "+c.Error)
	default:
		line := fmt.Sprintf("check    %s names %d files: %d missing from the container, %d files unreferenced", c.Table, c.Files, c.Missing, c.Unreferenced)
		if c.Missing > 0 {
			line += fmt.Sprintf("; MISSING e.g. %s", strings.Join(c.MissingExamples, ", "))
		}
		out = append(out, line)
	}
	return out
}
