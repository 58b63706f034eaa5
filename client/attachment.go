package client

import (
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"hash"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
)

// Attachments are encrypted on the device with a fresh random key and
// uploaded as an opaque blob; the key, the plaintext's size and SHA-256
// digest travel inside the MLS message (see [Attachment]).
//
// The blob is the plaintext cut into 64 KiB chunks, each sealed with
// XChaCha20-Poly1305 under the file's key. The nonce of chunk i is 15 zero
// bytes, i as a big-endian uint64, and one byte that is 1 for the last
// chunk and 0 otherwise (the STREAM construction): chunks cannot be
// reordered, dropped or the blob truncated without failing to open. The
// key is used for one file only, so counter nonces never repeat. An empty
// file is one empty last chunk.

const (
	attachmentKeySize = chacha20poly1305.KeySize
	attachmentChunk   = 64 << 10
	attachmentTag     = chacha20poly1305.Overhead
)

// ErrAttachment is returned when an attachment fails to decrypt or does
// not match its size or digest. It does not say which check failed.
var ErrAttachment = errors.New("client: attachment does not decrypt or verify")

// EncryptedSize is the size of the blob of a file of size bytes.
func EncryptedSize(size int64) int64 {
	chunks := (size + attachmentChunk - 1) / attachmentChunk
	if chunks == 0 {
		chunks = 1
	}
	return size + chunks*attachmentTag
}

func chunkNonce(i uint64, last bool) []byte {
	n := make([]byte, chacha20poly1305.NonceSizeX)
	binary.BigEndian.PutUint64(n[15:23], i)
	if last {
		n[23] = 1
	}
	return n
}

// attachmentEncrypter is an io.Reader of the blob of a plaintext stream.
// After EOF, Sum holds the plaintext's digest and n its size.
type attachmentEncrypter struct {
	src     io.Reader
	aead    cipher.AEAD
	h       hash.Hash
	pending []byte // plaintext read ahead, up to one chunk and one byte
	out     []byte // sealed bytes not yet read
	i       uint64
	n       int64
	done    bool
}

// newAttachmentEncrypter returns the blob reader and the fresh key.
func newAttachmentEncrypter(src io.Reader) (*attachmentEncrypter, []byte, error) {
	key := make([]byte, attachmentKeySize)
	rand.Read(key)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, nil, err
	}
	return &attachmentEncrypter{src: src, aead: aead, h: sha256.New(), pending: make([]byte, 0, attachmentChunk+1)}, key, nil
}

func (e *attachmentEncrypter) Read(p []byte) (int, error) {
	for len(e.out) == 0 {
		if e.done {
			return 0, io.EOF
		}
		if err := e.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, e.out)
	e.out = e.out[n:]
	return n, nil
}

// next seals the next chunk.
func (e *attachmentEncrypter) next() error {
	k, err := io.ReadFull(e.src, e.pending[len(e.pending):cap(e.pending)])
	e.pending = e.pending[:len(e.pending)+k]
	last := false
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		last = true
	case err != nil:
		return err
	}
	chunk := e.pending
	if !last {
		chunk = e.pending[:attachmentChunk]
	}
	e.h.Write(chunk)
	e.n += int64(len(chunk))
	e.out = e.aead.Seal(e.out[:0], chunkNonce(e.i, last), chunk, nil)
	e.i++
	if last {
		e.done = true
		clear(e.pending)
		e.pending = e.pending[:0]
	} else {
		rest := copy(e.pending, e.pending[attachmentChunk:])
		e.pending = e.pending[:rest]
	}
	return nil
}

// decryptAttachment reads the blob of a from src and writes the plaintext
// to dst; it returns ErrAttachment if anything fails to verify, in which
// case dst has received unverified data that must be discarded.
func decryptAttachment(dst io.Writer, src io.Reader, a *Attachment) error {
	aead, err := chacha20poly1305.NewX(a.Key)
	if err != nil {
		return ErrAttachment
	}
	h := sha256.New()
	buf := make([]byte, 0, attachmentChunk+attachmentTag+1)
	var pt []byte
	var total int64
	for i := uint64(0); ; i++ {
		k, err := io.ReadFull(src, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
		last := false
		switch {
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			last = true
		case err != nil:
			return err
		}
		sealed := buf
		if !last {
			sealed = buf[:attachmentChunk+attachmentTag]
		}
		pt, err = aead.Open(pt[:0], chunkNonce(i, last), sealed, nil)
		if err != nil {
			return ErrAttachment
		}
		total += int64(len(pt))
		if total > a.Size {
			return ErrAttachment
		}
		h.Write(pt)
		if _, err := dst.Write(pt); err != nil {
			return err
		}
		if last {
			break
		}
		buf = buf[:copy(buf, buf[attachmentChunk+attachmentTag:])]
	}
	if total != a.Size || subtle.ConstantTimeCompare(h.Sum(nil), a.SHA256) != 1 {
		return ErrAttachment
	}
	return nil
}
