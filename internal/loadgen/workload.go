package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hush-chat/hush/proto"
)

// Config is what every workload needs.
type Config struct {
	// Servers are the base URLs of the nodes; devices are spread over
	// them round-robin (device i on Servers[i%len]).
	Servers []string
	// MLS makes every message real MLS work: encrypted by its sender's
	// group state when sent and decrypted by each receiver's. Without it,
	// senders replay messages encrypted up front.
	MLS bool
	// Duration bounds each throughput workload's sending phase.
	Duration time.Duration
	// Count is the number of one-at-a-time round trips of the latency
	// workload.
	Count int
	// Window is how many sends each sender of the senders and group
	// workloads keeps in flight on its connection (1 if zero: each
	// message after the previous one's answer). The latency workload
	// always sends one at a time.
	Window int
	// Groups is how many conversations the senders and group workloads
	// run at once, each with its own members and senders (1 if zero).
	Groups int
	// PIDs are server processes whose memory is reported.
	PIDs []int
	// Holding, if not nil, is called by the idle workload once its
	// connections are open (and measured), while they are held.
	Holding func()
	// Log, if not nil, receives progress lines.
	Log  func(format string, args ...any)
	HTTP *http.Client
}

func (c *Config) logf(format string, args ...any) {
	if c.Log != nil {
		c.Log(format, args...)
	}
}

// tracker matches each message's send time, known once its sender has the
// answer (which names the seq), with its arrival at each receiver, which
// may come first.
type tracker struct {
	mu        sync.Mutex
	cond      *sync.Cond
	start     map[uint64]time.Time
	early     map[uint64][]time.Time
	lat       []time.Duration
	delivered int64
	last      time.Time // time of the latest delivery
}

func newTracker() *tracker {
	t := &tracker{start: map[uint64]time.Time{}, early: map[uint64][]time.Time{}}
	t.cond = sync.NewCond(&t.mu)
	return t
}

func (t *tracker) sent(seq uint64, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.start[seq] = at
	for _, r := range t.early[seq] {
		t.lat = append(t.lat, r.Sub(at))
	}
	delete(t.early, seq)
}

func (t *tracker) received(seq uint64, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, ok := t.start[seq]; ok {
		t.lat = append(t.lat, at.Sub(s))
	} else {
		t.early[seq] = append(t.early[seq], at)
	}
	t.delivered++
	t.last = at
	t.cond.Broadcast()
}

// wait waits until n deliveries have been seen or the deadline passes, and
// returns how many were.
func (t *tracker) wait(n int64, deadline time.Time) int64 {
	stop := time.AfterFunc(time.Until(deadline), func() {
		t.mu.Lock()
		t.cond.Broadcast()
		t.mu.Unlock()
	})
	defer stop.Stop()
	t.mu.Lock()
	defer t.mu.Unlock()
	for t.delivered < n && time.Now().Before(deadline) {
		t.cond.Wait()
	}
	return t.delivered
}

// spec describes a conversation workload.
type spec struct {
	name     string
	members  int  // devices in the group
	senders  int  // of which this many send
	lockstep bool // one message at a time: the next after the previous one's delivery
	count    int  // with lockstep, how many
	// sendOnly: the senders' connections are send-only (?push=0), so
	// only the members that do not send receive.
	sendOnly bool
}

// Latency sends Count messages one at a time from one device to another
// (on different nodes when there are several): each is sent once the
// previous one has arrived.
func Latency(ctx context.Context, c *Config) (*Result, error) {
	return run(ctx, c, spec{name: "latency", members: 2, senders: 1, lockstep: true, count: c.Count})
}

// Senders has n devices send into one conversation of n+1 members at once,
// each message after the previous one's answer, for Duration; every member
// is online and receives the others' messages.
func Senders(ctx context.Context, c *Config, n int) (*Result, error) {
	return run(ctx, c, spec{name: fmt.Sprintf("senders-%d", n), members: n + 1, senders: n})
}

// SendersOnly is Senders with send-only connections (?push=0) for the n
// senders: the one other member, online, receives every message, and the
// senders receive nothing. It measures the rate of accepting messages
// without the n-fold fan-out to the senders themselves.
func SendersOnly(ctx context.Context, c *Config, n int) (*Result, error) {
	return run(ctx, c, spec{name: fmt.Sprintf("senders-only-%d", n), members: n + 1, senders: n, sendOnly: true})
}

// Fanout has senders members of a group of g devices send for Duration;
// every member is online and receives the others' messages.
func Fanout(ctx context.Context, c *Config, g, senders int) (*Result, error) {
	return run(ctx, c, spec{name: fmt.Sprintf("group-%d", g), members: g, senders: min(senders, g)})
}

// conversation is one group of a workload, its members' connections and
// its tracker.
type conversation struct {
	g     *Group
	tr    *tracker
	conns []*Conn
}

func (cv *conversation) close() {
	for _, cn := range cv.conns {
		if cn != nil {
			cn.Close()
		}
	}
}

// openConversation registers a group of members devices and opens their
// connections; the first sendOnly of them are send-only.
func openConversation(ctx context.Context, c *Config, members, sendOnly int) (*conversation, error) {
	devs, err := RegisterMany(ctx, c.HTTP, c.Servers, members, 32)
	if err != nil {
		return nil, err
	}
	g, err := NewGroup(ctx, devs, c.MLS)
	if err != nil {
		return nil, err
	}
	cv := &conversation{g: g, tr: newTracker(), conns: make([]*Conn, len(g.Members))}
	for i, m := range g.Members {
		onMessage := func(env *proto.Envelope, at time.Time) {
			if env.Inbox || env.Kind != proto.KindApplication || string(env.GroupID) != string(g.ID) {
				return
			}
			g.Receive(m, env)
			cv.tr.received(env.Seq, at)
		}
		if i < sendOnly {
			cv.conns[i], err = DialSendOnly(ctx, m.Dev)
		} else {
			cv.conns[i], err = Dial(ctx, m.Dev, onMessage)
		}
		if err != nil {
			cv.close()
			return nil, err
		}
	}
	return cv, nil
}

func run(ctx context.Context, c *Config, s spec) (*Result, error) {
	groups := max(1, c.Groups)
	if s.lockstep {
		groups = 1
	}
	name := s.name
	if groups > 1 {
		name = fmt.Sprintf("%dx%s", groups, s.name)
	}
	c.logf("%s: registering %d devices on %d node(s)", name, groups*s.members, len(c.Servers))
	var cvs []*conversation
	defer func() {
		for _, cv := range cvs {
			cv.close()
		}
	}()
	for range groups {
		sendOnly := 0
		if s.sendOnly {
			sendOnly = s.senders
		}
		cv, err := openConversation(ctx, c, s.members, sendOnly)
		if err != nil {
			return nil, err
		}
		cvs = append(cvs, cv)
	}
	c.logf("%s: %d members online, %d sending (payload %d bytes, %s)", name, groups*s.members, groups*s.senders, cvs[0].g.PayloadLen(), map[bool]string{true: "real MLS per message", false: "pre-encrypted MLS"}[c.MLS])
	rssBefore := readRSS(c.PIDs)

	var accepted, errs atomic.Int64
	var firstErr atomic.Value
	receivers := int64(s.members - 1)
	if s.sendOnly {
		receivers = int64(s.members - s.senders)
	}
	cpu0 := sampleCPU(c.PIDs)
	t0 := time.Now()
	// Senders start no message after the deadline, and finish the ones
	// under way, so that every delivery belongs to an answered send.
	deadline := t0.Add(c.Duration)
	var wg sync.WaitGroup
	for _, cv := range cvs {
		g, tr := cv.g, cv.tr
		var groupAccepted atomic.Int64
		for i := range s.senders {
			m, conn := g.Members[i], cv.conns[i]
			wg.Go(func() {
				// window > 1: up to window sends in flight on the
				// connection, as a client flushing its outbox; the
				// payloads are still made one after another.
				window := windowOf(c, s)
				slots := make(chan struct{}, window)
				var stop atomic.Bool
				var inflight sync.WaitGroup
				defer inflight.Wait()
				send := func(n int, payload []byte) {
					start := time.Now()
					sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					sent, err := conn.Send(sctx, g.ID, proto.Send{
						ClientMsgID: fmt.Sprintf("%d-%d", i, n), Kind: proto.KindApplication, Epoch: g.Epoch, Payload: payload,
					})
					cancel()
					if err != nil {
						if ctx.Err() != nil {
							stop.Store(true)
							return
						}
						firstErr.CompareAndSwap(nil, err)
						errs.Add(1)
						if errors.Is(err, errClosed) {
							stop.Store(true)
						}
						return
					}
					tr.sent(sent.Seq, start)
					accepted.Add(1)
					a := groupAccepted.Add(1)
					if s.lockstep {
						if tr.wait(a*receivers, time.Now().Add(10*time.Second)) < a*receivers {
							firstErr.CompareAndSwap(nil, errors.New("a message was not delivered within 10s"))
							errs.Add(1)
							stop.Store(true)
						}
					}
				}
				for n := 0; ctx.Err() == nil && !stop.Load() && (s.lockstep && n < s.count || !s.lockstep && time.Now().Before(deadline)); n++ {
					payload, err := g.Payload(m)
					if err != nil {
						firstErr.CompareAndSwap(nil, err)
						errs.Add(1)
						return
					}
					if window == 1 {
						send(n, payload)
						continue
					}
					slots <- struct{}{}
					inflight.Go(func() {
						defer func() { <-slots }()
						send(n, payload)
					})
				}
			})
		}
	}
	wg.Wait()
	sending := time.Since(t0)
	want := accepted.Load() * receivers
	var got int64
	var last time.Time
	var lat []time.Duration
	var decryptErrors int64
	waitUntil := time.Now().Add(30 * time.Second)
	for _, cv := range cvs {
		cv.tr.mu.Lock()
		n := int64(len(cv.tr.start))
		cv.tr.mu.Unlock()
		got += cv.tr.wait(n*receivers, waitUntil)
	}
	cpu1 := sampleCPU(c.PIDs)
	for _, cv := range cvs {
		cv.tr.mu.Lock()
		if cv.tr.last.After(last) {
			last = cv.tr.last
		}
		lat = append(lat, cv.tr.lat...)
		cv.tr.mu.Unlock()
		decryptErrors += cv.g.DecryptErrors.Load()
	}
	delivering := last.Sub(t0)
	if delivering < sending {
		delivering = sending
	}
	r := &Result{
		Workload: name, Nodes: len(c.Servers), Members: s.members, Senders: s.senders, Receivers: int(receivers), Window: windowOf(c, s), Groups: groups, MLS: c.MLS,
		PayloadBytes: cvs[0].g.PayloadLen(), Seconds: sending.Seconds(),
		Accepted: accepted.Load(), Delivered: got, Lost: want - got, Errors: errs.Load(),
		AcceptedPerSec:  float64(accepted.Load()) / sending.Seconds(),
		DeliveredPerSec: float64(got) / delivering.Seconds(),
		Latency:         percentiles(lat),
		DecryptErrors:   decryptErrors,
		Conns:           groups * s.members,
	}
	if e, ok := firstErr.Load().(error); ok {
		r.FirstError = e.Error()
	}
	r.setRSS(c.PIDs, rssBefore, readRSS(c.PIDs), 0)
	r.setCPU(cpu0, cpu1)
	return r, nil
}

// windowOf is the sends each sender of s keeps in flight.
func windowOf(c *Config, s spec) int {
	if s.lockstep {
		return 1
	}
	return max(1, c.Window)
}

func percentiles(lat []time.Duration) Percentiles {
	if len(lat) == 0 {
		return Percentiles{}
	}
	slices.Sort(lat)
	at := func(q float64) float64 {
		i := int(q * float64(len(lat)-1))
		return float64(lat[i].Microseconds()) / 1000
	}
	return Percentiles{N: len(lat), P50: at(0.50), P95: at(0.95), P99: at(0.99), Max: at(1)}
}
