package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tracevault/tracevault/jobs"
)

// restoredBlobs prints what a blob restore wrote, also when it failed part-way.
func (a *app) restoredBlobs(cmd *cobra.Command, res *jobs.RestoreResult, err error) error {
	rep := res.Blobs
	if a.json {
		if perr := a.printJSON(cmd, rep); err == nil {
			err = perr
		}
	} else if rep.Target != "" {
		fmt.Fprintf(cmd.OutOrStdout(), "restored snapshot %s into %s: %d blobs written (%d bytes, each MD5 verified), %d already identical, %d newer kept, %d names the target cannot hold left out\n",
			res.Snapshot, rep.Target, rep.Written, rep.Bytes, rep.Identical, rep.KeptNewer, rep.Unfit)
	}
	if err != nil {
		return failed(err)
	}
	return nil
}
