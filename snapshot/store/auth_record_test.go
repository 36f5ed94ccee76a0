package store

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"filippo.io/age"
)

type testRecord struct {
	Chain string        `json:"chain"`
	N     int64         `json:"n"`
	Auth  []ManifestMAC `json:"auth,omitempty"`
}

// TestRecordAuthentication: a record's MACs verify only for its content, its name and its
// repository (another repository with the same identity has another repository key); a record
// without MAC is told apart; a plaintext repository authenticates nothing.
func TestRecordAuthentication(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "key.txt")
	if err := os.WriteFile(keyFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	enc := Options{Recipients: []string{id.Recipient().String()}, IdentityFile: keyFile}
	fs := func() Backend { return backendCases[0].open(t, AzureOptions{}) }
	repo, other, plain := openRepo(t, fs(), enc), openRepo(t, fs(), enc), openRepo(t, fs(), Options{})
	const name = "pitr/c1/seg/0000000000000100.json"
	rec := testRecord{Chain: "c1", N: 4}
	auth, err := SignRecord(repo, name, &rec)
	if err != nil || len(auth) != 1 {
		t.Fatalf("sign: %v %v", auth, err)
	}
	manifestAuth, err := manifestMAC(repo.authKeys[0].key, &Manifest{ID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		repo   *Repository
		at     string
		rec    testRecord
		auth   []ManifestMAC
		want   error
		noMACs bool
	}{
		{"as written", repo, name, rec, auth, nil, false},
		{"other name", repo, "pitr/c2/seg/0000000000000100.json", rec, auth, ErrUnauthenticated, false},
		{"altered field", repo, name, testRecord{Chain: "c1", N: 5}, auth, ErrUnauthenticated, false},
		{"other repository, same identity", other, name, rec, auth, ErrUnauthenticated, false},
		{"a manifest's MAC", repo, name, rec, []ManifestMAC{{Key: auth[0].Key, MAC: manifestAuth}}, ErrUnauthenticated, false},
		{"no MAC", repo, name, rec, nil, ErrUnauthenticated, true},
		{"plaintext repository", plain, name, testRecord{Chain: "c1", N: 5}, nil, nil, false},
	}
	for _, tc := range cases {
		err := AuthenticateRecord(tc.repo, tc.at, &tc.rec, tc.auth)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) || errors.Is(err, ErrNoRecordMAC) != tc.noMACs {
			t.Errorf("%s: %v, want %v (no MAC %v)", tc.name, err, tc.want, tc.noMACs)
		}
	}
}
