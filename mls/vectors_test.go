package mls

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// The official MLS test vectors (mlswg/mls-implementations, test-vectors/)
// live in testdata/vectors, byte for byte. Every case of every file runs;
// cases for cipher suites 4 and 6 (X448/Ed448, absent from the Go standard
// library) are skipped by name and counted.

func loadVectors(t *testing.T, name string, out any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "vectors", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, out); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// hexBytes is a hex-encoded JSON string.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = b
	return nil
}

// tally counts the passed, failed and skipped cases of one vector file and
// reports them when the test ends.
type tally struct {
	mu                      sync.Mutex
	passed, failed, skipped int
}

func newTally(t *testing.T, file string) *tally {
	ty := &tally{}
	t.Cleanup(func() {
		t.Logf("vectors %s: %d cases passed, %d failed, %d skipped (cipher suites 4 and 6 need X448/Ed448)",
			file, ty.passed, ty.failed, ty.skipped)
	})
	return ty
}

// record is deferred at the top of each case's subtest.
func (ty *tally) record(t *testing.T) {
	ty.mu.Lock()
	defer ty.mu.Unlock()
	switch {
	case t.Skipped():
		ty.skipped++
	case t.Failed():
		ty.failed++
	default:
		ty.passed++
	}
}

// suiteOrSkip returns the suite of a vector case, or skips the case when
// the suite is one this package cannot implement (4 and 6).
func suiteOrSkip(t *testing.T, cs uint16) *suite {
	t.Helper()
	s, err := lookupSuite(CipherSuite(cs))
	if err != nil {
		if cs == 4 || cs == 6 {
			t.Skipf("cipher suite %d needs X448/Ed448, which the Go standard library lacks", cs)
		}
		t.Fatalf("cipher suite %d: %v", cs, err)
	}
	return s
}
