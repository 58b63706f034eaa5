package client

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
)

func encryptForTest(t *testing.T, data []byte) ([]byte, *Attachment) {
	t.Helper()
	enc, key, err := newAttachmentEncrypter(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	blob, err := io.ReadAll(enc)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(blob)) != EncryptedSize(int64(len(data))) {
		t.Fatalf("blob of %d bytes for %d, want %d", len(blob), len(data), EncryptedSize(int64(len(data))))
	}
	sum := sha256.Sum256(data)
	if !bytes.Equal(enc.h.Sum(nil), sum[:]) || enc.n != int64(len(data)) {
		t.Fatal("encrypter digest or size is wrong")
	}
	return blob, &Attachment{BlobID: "x", Key: key, Size: int64(len(data)), SHA256: sum[:]}
}

func TestAttachmentRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, attachmentChunk - 1, attachmentChunk, attachmentChunk + 1, 3*attachmentChunk + 17} {
		data := bytes.Repeat([]byte{byte(size)}, size)
		blob, a := encryptForTest(t, data)
		var out bytes.Buffer
		if err := decryptAttachment(&out, bytes.NewReader(blob), a); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if !bytes.Equal(out.Bytes(), data) {
			t.Fatalf("size %d: round trip differs", size)
		}
	}
}

func TestAttachmentTampering(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), attachmentChunk/4)
	blob, a := encryptForTest(t, data)
	wrongDigest := *a
	wrongDigest.SHA256 = bytes.Repeat([]byte{9}, 32)
	wrongSize := *a
	wrongSize.Size--
	flipped := bytes.Clone(blob)
	flipped[10] ^= 1
	for name, tc := range map[string]struct {
		blob []byte
		a    *Attachment
	}{
		"digest mismatch":   {blob, &wrongDigest},
		"size mismatch":     {blob, &wrongSize},
		"flipped bit":       {flipped, a},
		"truncated":         {blob[:attachmentChunk+attachmentTag], a},
		"last chunk gone":   {blob[:len(blob)-10], a},
		"chunks swapped":    {append(append([]byte{}, blob[attachmentChunk+attachmentTag:2*(attachmentChunk+attachmentTag)]...), blob[:attachmentChunk+attachmentTag]...), a},
		"extra bytes after": {append(bytes.Clone(blob), 0), a},
	} {
		if err := decryptAttachment(io.Discard, bytes.NewReader(tc.blob), tc.a); !errors.Is(err, ErrAttachment) {
			t.Errorf("%s: got %v, want ErrAttachment", name, err)
		}
	}
}
