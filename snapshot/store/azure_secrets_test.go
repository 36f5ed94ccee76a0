package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/tracevault/tracevault/internal/devstack"
)

// TestAzureErrorsCarryNoSecrets: with a SAS token or an account key configured, the errors of
// failing operations (a missing blob, a refused connection, a forbidden request) name what failed
// but carry neither the SAS signature nor the key; errors.Is still sees through them.
func TestAzureErrorsCarryNoSecrets(t *testing.T) {
	ctx := context.Background()
	env := devstack.Require(t)
	field := func(k string) string {
		return regexp.MustCompile(k + `=([^;]+)`).FindStringSubmatch(env.AzureConnectionString)[1]
	}
	account, key, endpoint := field("AccountName"), field("AccountKey"), field("BlobEndpoint")
	az := openAzurite(t, AzureOptions{}).(*Azure) // creates the container the SAS is for
	cred, err := azblob.NewSharedKeyCredential(account, key)
	if err != nil {
		t.Fatal(err)
	}
	sasFor := func(perms sas.ContainerPermissions) string {
		qp, err := sas.BlobSignatureValues{Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour),
			ContainerName: az.opts.Container, Permissions: perms.String()}.SignWithSharedKey(cred)
		if err != nil {
			t.Fatal(err)
		}
		return qp.Encode()
	}
	token := sasFor(sas.ContainerPermissions{Read: true, Write: true, Delete: true, List: true, Create: true, Add: true})
	readOnly := sasFor(sas.ContainerPermissions{Read: true, List: true})
	sig := regexp.MustCompile(`sig=([^&]+)`).FindStringSubmatch(token)[1]
	noRetry := policy.RetryOptions{MaxRetries: -1}
	open := func(o AzureOptions) (*Azure, error) {
		o.Container, o.Prefix, o.Retry = az.opts.Container, "repo", noRetry
		if o.Endpoint == "" {
			o.Endpoint = endpoint
		}
		return NewAzure(ctx, o)
	}
	withSAS, err := open(AzureOptions{AccountName: account, SASToken: "?" + token})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := withSAS.Put(ctx, "data/ab/obj", strings.NewReader("x")); err != nil {
		t.Fatalf("the SAS token does not work: %v", err)
	}
	forbidden, err := open(AzureOptions{AccountName: account, SASToken: readOnly})
	if err != nil {
		t.Fatal(err)
	}
	withKey, err := open(AzureOptions{AccountName: account, AccountKey: key})
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	tests := []struct {
		name     string
		err      func() error
		notFound bool
	}{
		{"sas: get a missing blob", func() error { _, err := withSAS.Get(ctx, "data/zz/missing", 0, -1); return err }, true},
		{"sas: stat a missing blob", func() error { _, err := withSAS.Stat(ctx, "data/zz/missing"); return err }, true},
		{"sas: forbidden write", func() error { _, err := forbidden.Put(ctx, "data/ab/new", strings.NewReader("x")); return err }, false},
		{"sas: forbidden delete", func() error { return forbidden.Delete(ctx, "data/ab/obj") }, false},
		{"sas: forbidden lock", func() error { _, err := forbidden.Lock(ctx, "repository", time.Minute); return err }, false},
		{"sas: connection refused", func() error {
			_, err := open(AzureOptions{AccountName: account, SASToken: token, Endpoint: "http://127.0.0.1:1/" + account})
			return err
		}, false},
		{"key: get a missing blob", func() error { _, err := withKey.Get(ctx, "data/zz/missing", 0, -1); return err }, true},
		{"key: connection refused", func() error {
			_, err := open(AzureOptions{AccountName: account, AccountKey: key, Endpoint: "http://127.0.0.1:1/" + account})
			return err
		}, false},
		{"connection string: connection refused", func() error {
			cs := strings.Replace(env.AzureConnectionString, endpoint, "http://127.0.0.1:1/"+account, 1)
			_, err := NewAzure(ctx, AzureOptions{ConnectionString: cs, Container: az.opts.Container, Retry: noRetry})
			return err
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err()
			if err == nil {
				t.Fatal("the operation did not fail")
			}
			log.Error("operation failed", "err", err)
			for _, secret := range []string{"sig=", sig, key} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error text carries a secret (%.12s...): %v", secret, err)
				}
			}
			if tc.notFound != errors.Is(err, ErrNotFound) {
				t.Errorf("errors.Is(ErrNotFound) = %v: %v", !tc.notFound, err)
			}
			if !strings.Contains(err.Error(), az.opts.Container) && !strings.Contains(err.Error(), "127.0.0.1:1") {
				t.Errorf("error does not say what failed: %v", err)
			}
			t.Log(err)
		})
	}
	// A body read that fails mid-stream is scrubbed too (the retry reader re-requests the URL).
	rc, err := withSAS.Get(ctx, "data/ab/obj", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, rc)
	rc.Close()
	if strings.Contains(logged.String(), sig) || strings.Contains(logged.String(), key) || strings.Contains(logged.String(), "sig=") {
		t.Errorf("a secret reached the log:\n%s", logged.String())
	}
}

// TestScrubKeepsTheChain: the scrubbed text hides secrets wherever they appear, while errors.Is
// and errors.As still reach the original errors.
func TestScrubKeepsTheChain(t *testing.T) {
	key := "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	s := secretsOf(AzureOptions{AccountKey: key, SASToken: "?sv=2022-11-02&sig=c2VjcmV0c2lnbmF0dXJl%3D"})
	inner := &url.Error{Op: "Get", URL: "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sig=c2VjcmV0c2lnbmF0dXJl%3D", Err: ErrNotFound}
	err := s.scrub(fmt.Errorf("get b: %w (key %s, connection string AccountKey=%s;SharedAccessSignature=sig=other)", inner, key, "x"+key))
	for _, secret := range []string{"sig=", "c2VjcmV0c2lnbmF0dXJl", key, "AccountKey=x"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("scrubbed text still has %q: %s", secret, err)
		}
	}
	var ue *url.Error
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &ue) {
		t.Errorf("scrubbing broke the chain: %v", err)
	}
	if !strings.Contains(err.Error(), "https://acct.blob.core.windows.net/c/b") {
		t.Errorf("scrubbing removed what failed: %s", err)
	}
}
