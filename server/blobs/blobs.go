// Package blobs keeps encrypted attachments: opaque bytes uploaded by a
// device, stored on disk under the data directory (store.BlobDir) with
// their metadata in the store, and downloaded by id.
//
// # Security considerations
//
// Blobs are encrypted by the clients with keys the server never sees; the
// server learns their sizes and who uploaded them when. A blob id is 128
// random bits, and downloading needs an authenticated device and the id.
// Blobs are deleted by the periodic purge at the end of the retention
// period.
package blobs

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/store"
)

// Service stores and serves blobs.
type Service struct {
	store store.Store
	dir   *store.BlobDir
}

// New returns a Service keeping metadata in st and bytes in dir.
func New(st store.Store, dir *store.BlobDir) *Service { return &Service{store: st, dir: dir} }

// Put streams r into a new blob uploaded by dev. r must be bounded by the
// caller (http.MaxBytesReader): if reading it fails, nothing is kept.
func (s *Service) Put(ctx context.Context, dev store.DeviceID, r io.Reader) (proto.BlobRef, error) {
	id := store.NewBlobID()
	size, digest, err := s.dir.Put(id, r)
	if err != nil {
		return proto.BlobRef{}, err
	}
	if _, err := s.store.CreateBlob(ctx, store.Blob{ID: id, Uploader: dev, Size: size, Digest: digest[:]}); err != nil {
		s.dir.Delete(id)
		return proto.BlobRef{}, fmt.Errorf("blobs: record: %w", err)
	}
	return proto.BlobRef{ID: id.String(), Size: size}, nil
}

// Open opens a blob for reading; the caller closes it. store.ErrNotFound
// if it does not exist or was purged.
func (s *Service) Open(ctx context.Context, id store.BlobID) (*os.File, store.Blob, error) {
	b, err := s.store.Blob(ctx, id)
	if err != nil {
		return nil, store.Blob{}, err
	}
	f, err := s.dir.Open(id)
	if err != nil {
		return nil, store.Blob{}, err
	}
	return f, b, nil
}

// Delete removes the bytes of purged blobs.
func (s *Service) Delete(ids []store.BlobID) error {
	for _, id := range ids {
		if err := s.dir.Delete(id); err != nil {
			return err
		}
	}
	return nil
}
