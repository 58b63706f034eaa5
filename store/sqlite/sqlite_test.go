package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/hush-chat/hush/store"
	"github.com/hush-chat/hush/store/sqlite"
	"github.com/hush-chat/hush/store/storetest"
)

// open opens a store in a fresh temporary directory, on disk (not tmpfs),
// and closes it at the end of the test.
func open(tb testing.TB) store.Store {
	s, err := sqlite.Open(tb.Context(), filepath.Join(tb.TempDir(), "hush.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
}

func BenchmarkAppend(b *testing.B) {
	storetest.BenchmarkAppend(b, func(b *testing.B) store.Store { return open(b) })
}
