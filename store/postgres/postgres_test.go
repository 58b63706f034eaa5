package postgres_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hush-chat/hush/store"
	"github.com/hush-chat/hush/store/postgres"
	"github.com/hush-chat/hush/store/storetest"
)

// The database the tests use; each test works in a schema of its own,
// dropped afterwards. Override with HUSH_TEST_POSTGRES.
func baseDSN() string {
	if dsn := os.Getenv("HUSH_TEST_POSTGRES"); dsn != "" {
		return dsn
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// freshSchema creates an empty schema, dropped at the end of the test, and
// returns a DSN whose search_path selects it. Without a reachable server
// the test is skipped, or fails when CI is set.
func freshSchema(tb testing.TB) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, baseDSN())
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("PostgreSQL unreachable (CI is set, so this fails): %v", err)
		}
		tb.Skipf("skipping: PostgreSQL unreachable at %s: %v", baseDSN(), err)
	}
	var b [6]byte
	rand.Read(b[:])
	schema := fmt.Sprintf("hush_test_%x", b)
	if _, err := admin.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close(ctx)
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			tb.Errorf("dropping %s: %v", schema, err)
		}
		admin.Close(ctx)
	})
	return baseDSN() + "&search_path=" + schema
}

// openDSN opens a store with a small pool (tests run side by side), closed
// at the end of the test, before its schema is dropped.
func openDSN(tb testing.TB, dsn string) *postgres.Store {
	s, err := postgres.Open(tb.Context(), dsn+"&pool_max_conns=6")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openDSN(t, freshSchema(t)) })
}

func BenchmarkAppend(b *testing.B) {
	storetest.BenchmarkAppend(b, func(b *testing.B) store.Store { return openDSN(b, freshSchema(b)) })
}

func BenchmarkFanout(b *testing.B) {
	storetest.BenchmarkFanout(b, func(b *testing.B) store.Store { return openDSN(b, freshSchema(b)) })
}

// TestConcurrentMigrations: nodes starting at once migrate the schema once.
func TestConcurrentMigrations(t *testing.T) {
	dsn := freshSchema(t)
	const nodes = 4
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() {
			s, err := postgres.Open(t.Context(), dsn)
			if err == nil {
				err = s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT COUNT(*) FROM schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("migrations", "*.sql"))
	if err != nil {
		t.Fatal(err)
	}
	if n != len(files) {
		t.Fatalf("schema_migrations has %d rows, want %d: one per migration", n, len(files))
	}
}

// TestNodes runs two stores, as two server nodes, on one database: commits
// competing across them have one winner, and appends through both share
// one gap-free sequence.
func TestNodes(t *testing.T) {
	dsn := freshSchema(t)
	nodes := []store.Store{openDSN(t, dsn), openDSN(t, dsn)}
	ctx := t.Context()
	const members = 6
	var ds []store.DeviceID
	for i := range members {
		u, err := nodes[0].CreateUser(ctx, fmt.Sprintf("user%d", i), nil)
		if err != nil {
			t.Fatal(err)
		}
		d, err := nodes[0].CreateDevice(ctx, u.ID, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d.ID)
	}
	g := store.GroupID("two-node group")
	if err := nodes[0].CreateGroup(ctx, g, ds[0], 0, ds[1:]); err != nil {
		t.Fatal(err)
	}

	for epoch := uint64(0); epoch < 4; epoch++ {
		errs := make([]error, members)
		var wg sync.WaitGroup
		for i := range members {
			wg.Go(func() {
				m := store.Message{GroupID: g, Sender: ds[i], ClientMsgID: fmt.Sprintf("commit-%d-%d", epoch, i), Kind: store.KindCommit, Payload: []byte("c")}
				_, errs[i] = nodes[i%2].AppendCommit(ctx, m, epoch, ds)
			})
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, store.ErrEpochConflict):
				t.Fatal(err)
			}
		}
		if wins != 1 {
			t.Fatalf("epoch %d: %d commits won, want 1", epoch, wins)
		}
	}

	// Appends from both nodes, with the same idempotency keys sent to both.
	const each = 50
	seqs := make([][]uint64, members)
	errs := make([]error, members)
	var wg sync.WaitGroup
	for i := range members {
		wg.Go(func() {
			for j := range each {
				m := store.Message{GroupID: g, Sender: ds[i], ClientMsgID: fmt.Sprintf("m-%d", j), Kind: store.KindApplication, Payload: []byte("x")}
				var a [2]store.Appended
				for n := range nodes {
					if a[n], errs[i] = nodes[n].AppendMessage(ctx, m); errs[i] != nil {
						return
					}
				}
				if a[0].Seq != a[1].Seq || a[0].Duplicate == a[1].Duplicate {
					errs[i] = fmt.Errorf("the same message appended through both nodes: %+v", a)
					return
				}
				seqs[i] = append(seqs[i], a[0].Seq)
			}
		})
	}
	wg.Wait()
	var all []uint64
	for i := range members {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		all = append(all, seqs[i]...)
	}
	slices.Sort(all)
	gr, err := nodes[1].Group(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	first := gr.LastSeq - members*each + 1
	for i, seq := range all {
		if seq != first+uint64(i) {
			t.Fatalf("sequence numbers are not contiguous: %v", all)
		}
	}
}
