package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"

	"github.com/tracevault/tracevault/snapshot/store"
)

// Block size and concurrency of both sides of the pipeline step: the configuration's defaults.
const (
	pipelineBlock       = 8 << 20
	pipelineConcurrency = 4
)

// runChild is one side of the repository pipeline step, in its own process so that its peak
// RSS is its own: args are the input file, the Azurite connection string and a new container.
func runChild(ctx context.Context, kind string, args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("-child %s wants: INPUT CONNECTION_STRING CONTAINER", kind)
	}
	in, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer in.Close()
	switch kind {
	case "put-repository":
		repo, err := store.Open(ctx, store.Options{URL: "azblob://" + args[2], ConnectionString: args[1],
			BlockSize: pipelineBlock, Concurrency: pipelineConcurrency, CompressionLevel: 1})
		if err != nil {
			return err
		}
		_, _, err = repo.PutObject(ctx, "", in)
		return err
	case "put-raw":
		c, err := azblob.NewClientFromConnectionString(args[1], nil)
		if err != nil {
			return err
		}
		if _, err := c.CreateContainer(ctx, args[2], nil); err != nil {
			return fmt.Errorf("create container %s: %w", args[2], err)
		}
		bb := c.ServiceClient().NewContainerClient(args[2]).NewBlockBlobClient("raw")
		_, err = bb.UploadStream(ctx, io.Reader(in), &blockblob.UploadStreamOptions{BlockSize: pipelineBlock, Concurrency: pipelineConcurrency})
		return err
	}
	return fmt.Errorf("-child %q: unknown side", kind)
}
