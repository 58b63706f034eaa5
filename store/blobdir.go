package store

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// BlobDir keeps attachment bytes as files named by BlobID in one directory.
// Writes are atomic: a blob is either absent or complete, never partial.
// A BlobDir is safe for concurrent use.
type BlobDir struct {
	dir string
}

// OpenBlobDir returns a BlobDir over dir, creating it (mode 0700) if needed.
func OpenBlobDir(dir string) (*BlobDir, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: blob dir: %w", err)
	}
	return &BlobDir{dir: dir}, nil
}

func (d *BlobDir) path(id BlobID) string { return filepath.Join(d.dir, id.String()) }

// Put writes the bytes read from r as blob id and returns their size and
// SHA-256 digest. It writes a temporary file, syncs it, and renames it into
// place (mode 0600), so a crash leaves no partial blob. Putting an id twice
// replaces the bytes. Put reads r to its end: bound it (for example with
// http.MaxBytesReader) to enforce a size limit.
func (d *BlobDir) Put(id BlobID, r io.Reader) (size int64, digest [sha256.Size]byte, err error) {
	tmp, err := os.CreateTemp(d.dir, ".tmp-*") // CreateTemp uses mode 0600
	if err != nil {
		return 0, digest, fmt.Errorf("store: blob put: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	if size, err = io.Copy(io.MultiWriter(tmp, h), r); err != nil {
		return 0, digest, fmt.Errorf("store: blob put: %w", err)
	}
	if err = tmp.Sync(); err != nil {
		return 0, digest, fmt.Errorf("store: blob put: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return 0, digest, fmt.Errorf("store: blob put: %w", err)
	}
	if err = os.Rename(tmp.Name(), d.path(id)); err != nil {
		return 0, digest, fmt.Errorf("store: blob put: %w", err)
	}
	if err = d.syncDir(); err != nil {
		return 0, digest, err
	}
	h.Sum(digest[:0])
	return size, digest, nil
}

// Open opens blob id for streaming; the caller closes it. The returned
// *os.File supports Seek and Stat (for the size), as http.ServeContent
// needs. ErrNotFound if there is no such blob.
func (d *BlobDir) Open(id BlobID) (*os.File, error) {
	f, err := os.Open(d.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: blob open: %w", err)
	}
	return f, nil
}

// Delete removes blob id. Deleting a missing blob is not an error, so Purge
// results can be applied more than once.
func (d *BlobDir) Delete(id BlobID) error {
	if err := os.Remove(d.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: blob delete: %w", err)
	}
	return d.syncDir()
}

// syncDir makes a rename or removal in the directory durable.
func (d *BlobDir) syncDir() error {
	f, err := os.Open(d.dir)
	if err != nil {
		return fmt.Errorf("store: blob dir sync: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("store: blob dir sync: %w", err)
	}
	return nil
}
