package migrate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var unsafeTitle = regexp.MustCompile(`[^a-z0-9]+`)

// NewFiles returns the up and down paths `create` writes for title. The version continues the
// directory's numbering: sequential (zero-padded like the last file) when its versions are
// small integers, else a UTC timestamp (20060102150405), golang-migrate's two conventions.
func NewFiles(dir string, existing []Migration, title string, now time.Time) (up, down string, err error) {
	t := strings.Trim(unsafeTitle.ReplaceAllString(strings.ToLower(title), "_"), "_")
	if t == "" {
		return "", "", fmt.Errorf("create %q: the title needs letters or digits, e.g. add_trace_tags", title)
	}
	version := now.UTC().Format("20060102150405")
	if n := len(existing); n > 0 && existing[n-1].Version < 1e9 {
		last := existing[n-1]
		width := len(strings.SplitN(filepath.Base(last.Up), "_", 2)[0])
		version = fmt.Sprintf("%0*d", width, last.Version+1)
	} else if n > 0 {
		if v, _ := strconv.ParseInt(version, 10, 64); v <= existing[n-1].Version {
			return "", "", fmt.Errorf("create %q: the newest migration %d is not older than now (%s); check the clock", title, existing[n-1].Version, version)
		}
	}
	base := filepath.Join(dir, version+"_"+t)
	return base + ".up.sql", base + ".down.sql", nil
}

// Create writes empty up and down files, refusing to overwrite any.
func Create(up, down string) error {
	if err := os.MkdirAll(filepath.Dir(up), 0o755); err != nil {
		return fmt.Errorf("create migrations directory %s: %w", filepath.Dir(up), err)
	}
	for _, p := range []string{up, down} {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create %s: it exists already; pick another title", p)
		}
		if err != nil {
			return fmt.Errorf("create %s: %w", p, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("create %s: %w", p, err)
		}
	}
	return nil
}
