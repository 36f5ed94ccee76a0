// Package tempfile creates the scratch files tracevault spools to: segments being cut, streamed
// transactions, records checked before a restore.
package tempfile

import (
	"fmt"
	"os"
)

// Unlinked creates a temporary file and removes its name at once, so only the returned handle
// reaches it: the space comes back when the handle closes or the process dies, a SIGKILL or an
// OOM kill included, and a pod's TMPDIR never fills with a dead sidecar's files. what names the
// file's purpose in the error.
func Unlinked(what string) (*os.File, error) {
	f, err := os.CreateTemp("", "tracevault-*")
	if err != nil {
		return nil, fmt.Errorf("create a temporary file for %s (set TMPDIR to a writable directory): %w", what, err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("unlink the temporary file for %s: %w", what, err)
	}
	return f, nil
}
