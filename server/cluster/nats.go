package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultBucket is the JetStream key-value bucket of the room directory.
const DefaultBucket = "hush_rooms"

// DefaultTTL is how long a room's key outlives its node's last refresh.
const DefaultTTL = 15 * time.Second

// Config configures Connect.
type Config struct {
	// URL of the NATS server(s), comma-separated, as for the bus. Ignored
	// when Conn is set.
	URL string
	// Conn is an open connection to use instead of dialling URL. Close
	// leaves it open.
	Conn *nats.Conn
	// Self is this node's public URL, the one clients are pointed at
	// (required, unique per node).
	Self string
	// Bucket is the key-value bucket; DefaultBucket if empty. Every node of
	// a cluster must name the same one.
	Bucket string
	// TTL is how long a room stays placed on a node that stopped
	// refreshing it (a node that died); DefaultTTL if zero. Hosting nodes
	// refresh their rooms every TTL/3.
	TTL time.Duration
	// OnLost is called, on the directory's goroutine, for each room this
	// node hosted that the directory now places on another node. The SFU
	// ends that room's calls here; it must not block for long.
	OnLost func(Room)
	// Logger receives warnings (refreshes that failed); slog.Default() if
	// nil.
	Logger *slog.Logger
}

// NATS is a Directory in a JetStream key-value bucket, shared by the
// nodes of a cluster.
type NATS struct {
	cfg     Config
	nc      *nats.Conn
	ownConn bool
	kv      jetstream.KeyValue

	// mu serializes the changes to this node's rooms: placements, releases
	// and refreshes (they are rare: one per call, and one per room every
	// TTL/3).
	mu     sync.Mutex
	hosted map[string]*hosted // by key
	closed bool

	stop chan struct{}
	done chan struct{}
}

// hosted is a room this node hosts and the revision of its key that this
// node wrote last.
type hosted struct {
	room Room
	rev  uint64
}

var _ Directory = (*NATS)(nil)

// Connect opens the directory: it connects to NATS (unless cfg.Conn is
// given), creates the bucket if no node has yet, and starts refreshing.
func Connect(ctx context.Context, cfg Config) (*NATS, error) {
	if cfg.Self == "" {
		return nil, errors.New("cluster: Config.Self (this node's public URL) is required")
	}
	if cfg.Bucket == "" {
		cfg.Bucket = DefaultBucket
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	d := &NATS{cfg: cfg, nc: cfg.Conn, hosted: make(map[string]*hosted), stop: make(chan struct{}), done: make(chan struct{})}
	if d.nc == nil {
		url := cfg.URL
		if url == "" {
			url = nats.DefaultURL
		}
		nc, err := nats.Connect(url, nats.Name("hush room directory"), nats.MaxReconnects(-1))
		if err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		d.nc, d.ownConn = nc, true
	}
	js, err := jetstream.New(d.nc)
	if err == nil {
		d.kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      cfg.Bucket,
			Description: "hush: which node hosts each call room",
			History:     1,
			TTL:         cfg.TTL,
			Storage:     jetstream.MemoryStorage,
		})
	}
	if err != nil {
		if d.ownConn {
			d.nc.Close()
		}
		return nil, fmt.Errorf("cluster: room directory bucket %s: %w", cfg.Bucket, err)
	}
	go d.refreshLoop()
	return d, nil
}

func (d *NATS) Place(ctx context.Context, room Room) (Placement, error) {
	if err := checkRoom(room); err != nil {
		return Placement{}, err
	}
	key := room.key()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return Placement{}, ErrClosed
	}
	if d.hosted[key] != nil {
		return Placement{URL: d.cfg.Self, Local: true}, nil
	}
	// A few rounds: the key may expire or be released between our
	// attempt to create it and our read of it.
	for range 4 {
		rev, err := d.kv.Create(ctx, key, []byte(d.cfg.Self))
		if err == nil {
			d.hosted[key] = &hosted{room: room, rev: rev}
			return Placement{URL: d.cfg.Self, Local: true}, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return Placement{}, fmt.Errorf("cluster: place %s: %w", room, err)
		}
		e, err := d.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue
		}
		if err != nil {
			return Placement{}, fmt.Errorf("cluster: place %s: %w", room, err)
		}
		url := string(e.Value())
		if url != d.cfg.Self {
			return Placement{URL: url}, nil
		}
		// Placed here by this node's previous run: take it back.
		rev, err = d.kv.Update(ctx, key, []byte(d.cfg.Self), e.Revision())
		if err == nil {
			d.hosted[key] = &hosted{room: room, rev: rev}
			return Placement{URL: d.cfg.Self, Local: true}, nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return Placement{}, fmt.Errorf("cluster: place %s: %w", room, err)
		}
	}
	return Placement{}, fmt.Errorf("cluster: place %s: the key kept changing", room)
}

func (d *NATS) Lookup(ctx context.Context, room Room) (Placement, bool, error) {
	if err := checkRoom(room); err != nil {
		return Placement{}, false, err
	}
	key := room.key()
	d.mu.Lock()
	closed, local := d.closed, d.hosted[key] != nil
	d.mu.Unlock()
	switch {
	case closed:
		return Placement{}, false, ErrClosed
	case local:
		return Placement{URL: d.cfg.Self, Local: true}, true, nil
	}
	e, err := d.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return Placement{}, false, nil
	}
	if err != nil {
		return Placement{}, false, fmt.Errorf("cluster: look up %s: %w", room, err)
	}
	url := string(e.Value())
	return Placement{URL: url, Local: url == d.cfg.Self}, true, nil
}

func (d *NATS) Release(ctx context.Context, room Room) error {
	if err := checkRoom(room); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.release(ctx, room.key())
}

// release deletes a hosted room's key if this node still holds it; d.mu
// is held.
func (d *NATS) release(ctx context.Context, key string) error {
	h := d.hosted[key]
	if h == nil {
		return nil
	}
	delete(d.hosted, key)
	err := d.kv.Delete(ctx, key, jetstream.LastRevision(h.rev))
	if err != nil && !isConflict(err) {
		return fmt.Errorf("cluster: release %s: %w", h.room, err)
	}
	return nil // or another node holds it now: nothing of ours to delete
}

// Close releases the rooms this node hosts, stops refreshing, and closes
// the connection if Connect opened it.
func (d *NATS) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	close(d.stop)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	var errs []error
	for key := range d.hosted {
		errs = append(errs, d.release(ctx, key))
	}
	cancel()
	d.mu.Unlock()
	<-d.done
	if d.ownConn {
		d.nc.Close()
	}
	return errors.Join(errs...)
}

// Conn returns the directory's NATS connection, for the call relay
// (NewRelay) to share.
func (d *NATS) Conn() *nats.Conn { return d.nc }

// Hosted returns the rooms this node hosts.
func (d *NATS) Hosted() []Room {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Room, 0, len(d.hosted))
	for _, h := range d.hosted {
		out = append(out, h.room)
	}
	return out
}

func (d *NATS) refreshLoop() {
	defer close(d.done)
	t := time.NewTicker(d.cfg.TTL / 3)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			for _, r := range d.refresh() {
				if d.cfg.OnLost != nil {
					d.cfg.OnLost(r)
				}
			}
		}
	}
}

// refresh rewrites the key of every hosted room, so that it does not
// expire, and returns the rooms found placed on another node.
func (d *NATS) refresh() (lost []Room) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.TTL/3)
	defer cancel()
	for key, h := range d.hosted {
		rev, err := d.kv.Update(ctx, key, []byte(d.cfg.Self), h.rev)
		if err == nil {
			h.rev = rev
			continue
		}
		if !isConflict(err) {
			// NATS unreachable, say: keep the room and try again at the
			// next tick; if the key expires meanwhile, we find out then.
			d.cfg.Logger.Warn("cluster: refresh room", "room", h.room, "err", err)
			continue
		}
		// Our key expired (a refresh came too late) or another node
		// placed the room: create it anew if nobody holds it.
		rev, err = d.kv.Create(ctx, key, []byte(d.cfg.Self))
		switch {
		case err == nil:
			h.rev = rev
		case errors.Is(err, jetstream.ErrKeyExists):
			delete(d.hosted, key)
			lost = append(lost, h.room)
		default:
			d.cfg.Logger.Warn("cluster: refresh room", "room", h.room, "err", err)
		}
	}
	return lost
}

// isConflict reports a compare-and-set that failed because the key's
// revision is not the one expected.
func isConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) ||
		errors.Is(err, jetstream.ErrKeyNotFound)
}
