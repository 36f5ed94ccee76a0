package devstack

import (
	"fmt"
	"strings"
	"time"

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
