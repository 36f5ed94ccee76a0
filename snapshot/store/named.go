package store

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// PutNamed stores src under a caller-chosen name outside data/, through the same codec as every
// object (compressed, encrypted) and returns its size and checksum for the caller to record. It is
// for streams whose lifetime a manifest does not own, such as the PostgreSQL change segments under
// pitr/: prune sweeps only data/, so they stay until their own retention removes them.
func (r *Repository) PutNamed(ctx context.Context, name string, src io.Reader) (ObjectRef, error) {
	if strings.HasPrefix(name, "data/") || strings.HasPrefix(name, "snapshots/") || name == "" || strings.Contains(name, "..") {
		return ObjectRef{}, fmt.Errorf("store %q: a named object may not live under data/ or snapshots/", name)
	}
	stored, d := r.codec.encode(src)
	defer stored.Close()
	n, err := r.b.Put(ctx, name, stored)
	if err != nil {
		return ObjectRef{}, fmt.Errorf("store %s: %w", name, err)
	}
	return ObjectRef{Size: n, RawSize: d.size, SHA256: d.sum()}, nil
}

// OpenNamed reads what PutNamed stored; reading fails at the end if the plaintext does not match
// ref's size and checksum, so a damaged stream never reads as complete.
func (r *Repository) OpenNamed(ctx context.Context, name string, ref ObjectRef) (io.ReadCloser, error) {
	stored, err := r.b.Get(ctx, name, 0, -1)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	plain, err := r.codec.decode(stored)
	if err != nil {
		stored.Close()
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return &verifier{r: plain, close: stored.Close, d: newDigest(), want: ref, name: name}, nil
}

// CreateJSON stores a small document as PutJSON does, but only if name is free: ErrExists
// otherwise (Backend.Create). Records that writers must not replace are stored with it.
func (r *Repository) CreateJSON(ctx context.Context, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	stored := r.codec.encodeDocument(b)
	defer stored.Close()
	_, err = r.b.Create(ctx, name, stored)
	return err
}
