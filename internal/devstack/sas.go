package devstack

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
)

// AzureContainerSAS signs a container SAS with the given permissions ("rcl": read, create,
// list: the append-only daemon's credential) with Azurite's account key, valid for an hour. It
// returns the account's blob endpoint and the SAS query string, which is a secret.
func (e *Env) AzureContainerSAS(container, permissions string) (endpoint, token string, err error) {
	kv := map[string]string{}
	for _, part := range strings.Split(e.AzureConnectionString, ";") {
		if k, v, ok := strings.Cut(part, "="); ok {
			kv[k] = v
		}
	}
	cred, err := service.NewSharedKeyCredential(kv["AccountName"], kv["AccountKey"])
	if err != nil {
		return "", "", fmt.Errorf("azurite account key: %w", err)
	}
	var p sas.ContainerPermissions
	for _, c := range permissions {
		switch c {
		case 'r':
			p.Read = true
		case 'a':
			p.Add = true
		case 'c':
			p.Create = true
		case 'w':
			p.Write = true
		case 'd':
			p.Delete = true
		case 'l':
			p.List = true
		default:
			return "", "", fmt.Errorf("container SAS permission %q: use r, a, c, w, d, l", c)
		}
	}
	q, err := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		StartTime:     time.Now().Add(-5 * time.Minute).UTC(),
		ExpiryTime:    time.Now().Add(time.Hour).UTC(),
		Permissions:   p.String(),
		ContainerName: container,
	}.SignWithSharedKey(cred)
	if err != nil {
		return "", "", fmt.Errorf("sign a container SAS for %s: %w", container, err)
	}
	return strings.TrimSuffix(kv["BlobEndpoint"], "/"), q.Encode(), nil
}

// SASContainer is a scratch container on Azurite, deleted when the test ends, with a container
// SAS for it: what the append-only tests hand the daemon, while Admin (the account key) plays
// the operator or the attacker's yardstick.
type SASContainer struct {
	Name, Endpoint, SAS string
	Admin               *container.Client
}

// ScratchSASContainer creates a container named after prefix and signs a SAS with permissions
// for it (see AzureContainerSAS).
func (e *Env) ScratchSASContainer(tb testing.TB, prefix, permissions string) *SASContainer {
	tb.Helper()
	c := &SASContainer{Name: strings.ReplaceAll(strings.ToLower(ScratchName(prefix)), "_", "-")}
	var err error
	if c.Admin, err = container.NewClientFromConnectionString(e.AzureConnectionString, c.Name, nil); err != nil {
		tb.Fatal(err)
	}
	if _, err := c.Admin.Create(context.Background(), nil); err != nil {
		tb.Fatalf("create container %s: %v", c.Name, err)
	}
	tb.Cleanup(func() { _, _ = c.Admin.Delete(context.Background(), nil) })
	if c.Endpoint, c.SAS, err = e.AzureContainerSAS(c.Name, permissions); err != nil {
		tb.Fatal(err)
	}
	return c
}
