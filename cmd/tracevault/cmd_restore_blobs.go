package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tracevault/tracevault/jobs"
	"github.com/tracevault/tracevault/snapshot/blobs"
	"github.com/tracevault/tracevault/snapshot/store"
)

// restoreBlobs writes a snapshot's blobs into the container they came from, or --blob-url,
// with [blobs]' credentials.
func (a *app) restoreBlobs(cmd *cobra.Command, repo *store.Repository, m *store.Manifest, f restoreFlags) error {
	if f.dryRun {
		return usage(fmt.Errorf("--dry-run is not supported with --only blobs"))
	}
	b := a.cfg.Blobs
	rep, err := blobs.Restore(cmd.Context(), repo, m, blobs.RestoreOptions{
		URL: f.blobURL, Credentials: jobs.BlobCredentials(b), Replace: f.replace, Workers: b.Workers, Log: a.log,
	})
	if a.json {
		if perr := a.printJSON(cmd, rep); err == nil {
			err = perr
		}
	} else if rep.Target != "" {
		fmt.Fprintf(cmd.OutOrStdout(), "restored snapshot %s into %s: %d blobs written (%d bytes, each MD5 verified), %d already identical, %d newer kept, %d names the target cannot hold left out\n",
			m.ID, rep.Target, rep.Written, rep.Bytes, rep.Identical, rep.KeptNewer, rep.Unfit)
	}
	if err != nil {
		return failed(err)
	}
	return nil
}
