package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/hush-chat/hush/store"
	"github.com/hush-chat/hush/store/sqlite"
	"github.com/hush-chat/hush/store/storetest"
)

func open(t *testing.T) store.Store {
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "hush.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, open)
}
