// Package idb keeps a Hush client's local state in the browser: a
// [client.Storage] whose rows live in memory, loaded once from IndexedDB
// when the page opens, and whose transactions are written back to
// IndexedDB, in one IndexedDB transaction each, before Commit returns.
//
// IndexedDB transactions close by themselves as soon as the page's code
// yields to the event loop with no request pending, so they cannot span
// the Go core's transactions, which run while other goroutines (and
// promises) go on. The rows are therefore read from memory, and a
// writable transaction's changes are buffered and handed to a
// [Persister] at Commit. A Go lock makes writers take turns; readers
// see every committed transaction whole and never one in progress.
//
// The Persister of the web client (see the wasm bridge in web/wasm and
// web/src/vault.ts) seals every value a second time, with AES-GCM under a
// non-extractable WebCrypto key kept in the same IndexedDB database,
// before it reaches the disk.
//
// # Security considerations
//
// The values given to this package are already sealed by package client
// (XChaCha20-Poly1305 under the store key, bound to their row); this
// package adds no cryptography. Row ids are table and row key, which
// package client chooses so that they reveal nothing secret.
package idb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/hush-chat/hush/client"
)

// Row is one stored row: its ID is the table, a NUL byte, and the key.
type Row struct {
	ID    string
	Value []byte
}

// RowID is the id under which a row of table is stored.
func RowID(table, key string) string { return table + "\x00" + key }

// splitID splits a row id into its table and key.
func splitID(id string) (table, key string, ok bool) { return strings.Cut(id, "\x00") }

// Persister writes committed changes to durable storage: puts and
// deletes (row ids) together, all or nothing. It returns once they are
// durable.
type Persister interface {
	Persist(ctx context.Context, puts []Row, deletes []string) error
}

// Store is a client.Storage in memory, persisted by a Persister.
type Store struct {
	p      Persister
	writer chan struct{} // holds a token while a writable tx is open

	mu     sync.RWMutex
	tables map[string]*table
	closed bool
}

var _ client.Storage = (*Store)(nil)

type table struct {
	keys []string // sorted
	vals map[string][]byte
}

func (t *table) put(key string, v []byte) {
	if _, ok := t.vals[key]; !ok {
		i, _ := slices.BinarySearch(t.keys, key)
		t.keys = slices.Insert(t.keys, i, key)
	}
	t.vals[key] = v
}

func (t *table) delete(key string) {
	if _, ok := t.vals[key]; !ok {
		return
	}
	delete(t.vals, key)
	if i, ok := slices.BinarySearch(t.keys, key); ok {
		t.keys = slices.Delete(t.keys, i, i+1)
	}
}

// ErrClosed is returned by a Store after Close.
var ErrClosed = errors.New("idb: store is closed")

// New returns a store holding rows (as loaded from IndexedDB) that
// persists its transactions through p.
func New(rows []Row, p Persister) (*Store, error) {
	s := &Store{p: p, writer: make(chan struct{}, 1), tables: make(map[string]*table)}
	for _, r := range rows {
		tbl, key, ok := splitID(r.ID)
		if !ok {
			return nil, fmt.Errorf("idb: malformed row id %q", r.ID)
		}
		s.table(tbl).put(key, r.Value)
	}
	return s, nil
}

func (s *Store) table(name string) *table {
	t := s.tables[name]
	if t == nil {
		t = &table{vals: make(map[string][]byte)}
		s.tables[name] = t
	}
	return t
}

// Begin implements client.Storage. A writable transaction waits for the
// one before it to end, or for ctx.
func (s *Store) Begin(ctx context.Context, writable bool) (client.StorageTx, error) {
	if writable {
		select {
		case s.writer <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		if writable {
			<-s.writer
		}
		return nil, ErrClosed
	}
	t := &tx{s: s, ctx: context.WithoutCancel(ctx), writable: writable}
	if writable {
		t.puts, t.dels = make(map[string][]byte), make(map[string]bool)
	}
	return t, nil
}

// Close implements client.Storage; the rows stay in IndexedDB.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.tables = nil
	return nil
}

// tx is a transaction: reads go to the committed rows, overlaid with the
// transaction's own changes.
type tx struct {
	s        *Store
	ctx      context.Context
	writable bool
	done     bool
	puts     map[string][]byte // row id → value
	dels     map[string]bool   // row ids
}

var errDone = errors.New("idb: transaction has ended")

func (t *tx) Get(tbl, key string) ([]byte, bool, error) {
	if t.done {
		return nil, false, errDone
	}
	id := RowID(tbl, key)
	if v, ok := t.puts[id]; ok {
		return slices.Clone(v), true, nil
	}
	if t.dels[id] {
		return nil, false, nil
	}
	t.s.mu.RLock()
	defer t.s.mu.RUnlock()
	if t.s.closed {
		return nil, false, ErrClosed
	}
	tb := t.s.tables[tbl]
	if tb == nil {
		return nil, false, nil
	}
	v, ok := tb.vals[key]
	return slices.Clone(v), ok, nil
}

func (t *tx) Put(tbl, key string, value []byte) error {
	if !t.writable {
		return errors.New("idb: put in a read-only transaction")
	}
	if t.done {
		return errDone
	}
	if strings.ContainsRune(tbl, 0) {
		return errors.New("idb: table name contains NUL")
	}
	id := RowID(tbl, key)
	delete(t.dels, id)
	t.puts[id] = slices.Clone(value)
	return nil
}

func (t *tx) Delete(tbl, key string) error {
	if !t.writable {
		return errors.New("idb: delete in a read-only transaction")
	}
	if t.done {
		return errDone
	}
	id := RowID(tbl, key)
	delete(t.puts, id)
	t.dels[id] = true
	return nil
}

// Scan implements client.StorageTx: the rows are collected first, so fn
// may change the transaction.
func (t *tx) Scan(tbl, prefix string, fn func(key string, value []byte) error) error {
	if t.done {
		return errDone
	}
	rows := map[string][]byte{}
	t.s.mu.RLock()
	if t.s.closed {
		t.s.mu.RUnlock()
		return ErrClosed
	}
	if tb := t.s.tables[tbl]; tb != nil {
		i, _ := slices.BinarySearch(tb.keys, prefix)
		for _, k := range tb.keys[i:] {
			if !strings.HasPrefix(k, prefix) {
				break
			}
			rows[k] = tb.vals[k]
		}
	}
	t.s.mu.RUnlock()
	head := tbl + "\x00" + prefix
	for id, v := range t.puts {
		if strings.HasPrefix(id, head) {
			rows[id[len(tbl)+1:]] = v
		}
	}
	for id := range t.dels {
		if strings.HasPrefix(id, head) {
			delete(rows, id[len(tbl)+1:])
		}
	}
	keys := make([]string, 0, len(rows))
	for k := range rows {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := fn(k, slices.Clone(rows[k])); err != nil {
			return err
		}
	}
	return nil
}

// Commit persists the transaction's changes, then makes them visible.
func (t *tx) Commit() error {
	if t.done {
		return errDone
	}
	if !t.writable {
		t.done = true
		return nil
	}
	defer t.end()
	if len(t.puts) == 0 && len(t.dels) == 0 {
		return nil
	}
	puts := make([]Row, 0, len(t.puts))
	for id, v := range t.puts {
		puts = append(puts, Row{ID: id, Value: v})
	}
	slices.SortFunc(puts, func(a, b Row) int { return strings.Compare(a.ID, b.ID) })
	dels := make([]string, 0, len(t.dels))
	for id := range t.dels {
		dels = append(dels, id)
	}
	slices.Sort(dels)
	if err := t.s.p.Persist(t.ctx, puts, dels); err != nil {
		return fmt.Errorf("idb: commit: %w", err)
	}
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	if t.s.closed {
		return ErrClosed
	}
	for _, r := range puts {
		tbl, key, _ := splitID(r.ID)
		t.s.table(tbl).put(key, r.Value)
	}
	for _, id := range dels {
		tbl, key, _ := splitID(id)
		if tb := t.s.tables[tbl]; tb != nil {
			tb.delete(key)
		}
	}
	return nil
}

// Rollback implements client.StorageTx.
func (t *tx) Rollback() error {
	if t.done {
		return nil
	}
	if t.writable {
		t.end()
	}
	t.done = true
	return nil
}

func (t *tx) end() {
	t.done = true
	t.puts, t.dels = nil, nil
	<-t.s.writer
}
