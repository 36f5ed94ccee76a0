package replay

import (
	"bytes"
	"context"
	"crypto/md5"
	"fmt"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"

	"github.com/tracevault/tracevault/internal/devstack"
	"github.com/tracevault/tracevault/snapshot/blobs"
)

// TestSelectAfterCutOnAzurite writes events to a container on the stack's Azurite before and
// after a cut, and selects through snapshot/blobs' listing: only events written after the cut
// less the margin, oldest first whatever their names, and the unreplayable keys counted and named.
func TestSelectAfterCutOnAzurite(t *testing.T) {
	env := devstack.Require(t)
	ctx := context.Background()
	name := fmt.Sprintf("replay-%d", time.Now().UnixNano()%1e12)
	c, err := blobs.OpenContainer(ctx, "azblob://"+name+"/events", blobs.Credentials{ConnectionString: env.AzureConnectionString}, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if az, err := azblob.NewClientFromConnectionString(env.AzureConnectionString, nil); err == nil {
			_, _ = az.DeleteContainer(context.Background(), name, nil)
		}
	})
	put := func(key string) {
		t.Helper()
		body := []byte(`{"id":"` + key + `"}`)
		sum := md5.Sum(body)
		if err := c.Put(ctx, key, int64(len(body)), sum[:], bytes.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	// Azure's Last-Modified has whole seconds: writes a second and more apart are ordered.
	const gap = 1100 * time.Millisecond
	put("p1/trace/old/e0.json") // before the margin: not replayed
	put("p1/trace/e.json")      // malformed, and before the margin: not even counted
	time.Sleep(3 * time.Second)
	put("p1/trace/in-margin/e1.json") // before the cut, within the margin: replayed
	time.Sleep(gap)
	cut, margin := time.Now(), 2500*time.Millisecond
	time.Sleep(gap)
	// Written in the reverse of name order, so time order is not the listing's order.
	after := []string{"p1/trace/z/e2.json", "p0/score/a/e3.json", "otel/p2/2026/12/06/11/58/e4.json"}
	for _, k := range after {
		put(k)
		time.Sleep(gap)
	}
	put("p1/sdk_log/b/e5.json")
	put("p1/trace/b/e6.txt")
	put("p1/observation/e7.json")

	sel, err := Select(ctx, c, Window{Since: cut.Add(-margin), Until: time.Now().Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range sel.Events {
		got = append(got, e.Key)
	}
	want := append([]string{"p1/trace/in-margin/e1.json"}, after...)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("selected %v, want %v (time order)", got, want)
	}
	if sel.ByProject["p1"] != 2 || sel.ByProject["p0"] != 1 || sel.ByProject["p2"] != 1 ||
		sel.ByType["trace"] != 2 || sel.ByType["score"] != 1 || sel.ByType[OtelType] != 1 {
		t.Fatalf("counts by project %v, by type %v", sel.ByProject, sel.ByType)
	}
	if sel.Unreplayable != 3 || len(sel.Named) != 3 {
		t.Fatalf("unreplayable %d, named %v; want the 3 bad keys after the cut", sel.Unreplayable, sel.Named)
	}
	named := map[string]string{}
	for _, r := range sel.Named {
		named[r.Key] = r.Reason
	}
	for _, k := range []string{"p1/sdk_log/b/e5.json", "p1/trace/b/e6.txt", "p1/observation/e7.json"} {
		if named[k] == "" {
			t.Errorf("%s not named among the unreplayable keys: %v", k, sel.Named)
		}
	}
	if !sel.First.Before(sel.Last) || sel.Oldest.After(sel.First) {
		t.Fatalf("time range %s..%s, oldest %s", sel.First, sel.Last, sel.Oldest)
	}
}
