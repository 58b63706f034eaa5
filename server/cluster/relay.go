package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/server/calls"
)

// DefaultKeepAlive is how often an origin node tells each host which of
// its relayed sessions are alive.
const DefaultKeepAlive = 5 * time.Second

// DefaultRelayTimeout is how long an origin node waits for the host's
// answer to a relayed frame (a join includes gathering ICE candidates).
const DefaultRelayTimeout = 15 * time.Second

// RelayConfig configures NewRelay.
type RelayConfig struct {
	// Conn is the connection to NATS (required); Close leaves it open.
	Conn *nats.Conn
	// Self is this node's public URL, as in the directory's Config.Self
	// (required).
	Self string
	// SFU hosts the sessions other nodes relay to this node (required).
	SFU *calls.SFU
	// KeepAlive is how often an origin node tells each host node which
	// of its relayed sessions are alive; DefaultKeepAlive if zero.
	KeepAlive time.Duration
	// Expiry is how long a host keeps a relayed session its origin no
	// longer keeps alive, and how long an origin keeps sessions whose
	// host stopped answering its keepalives; 3 × KeepAlive if zero.
	Expiry time.Duration
	// Timeout bounds the wait for the host's answer to one frame;
	// DefaultRelayTimeout if zero.
	Timeout time.Duration
	// Errors turns the host SFU's errors (what calls.Session.Handle
	// returns, such as Options.Authorize's) into the errors the device
	// gets. Nil passes *proto.Error values on and makes the others
	// CodeInternal.
	Errors func(error) *proto.Error
	// Logger receives the relay's warnings; slog.Default() if nil.
	Logger *slog.Logger
}

// Relay carries call signalling between the nodes of a cluster, over
// NATS, so that a device joins a call hosted on any node through the node
// it is connected to. It implements calls.Remote for the node relaying a
// device's frames (the origin), and hosts, in its SFU, the sessions other
// nodes relay to this one. See docs/CLUSTER.md.
type Relay struct {
	cfg  RelayConfig
	self string // this node's relay id
	log  *slog.Logger
	nc   *nats.Conn
	sub  *nats.Subscription

	ctx    context.Context // ends with Close: the host's handling of frames
	cancel context.CancelFunc

	mu      sync.Mutex
	hosted  map[string]*hostSession   // sessions relayed here, by session id
	origins map[string]*originSession // sessions relayed from here, by session id
	hostOK  map[string]time.Time      // by host node id: its last keepalive answer
	closed  bool

	stop  chan struct{}
	loops sync.WaitGroup // the keepalive loop and the hosted sessions' goroutines
}

var _ calls.Remote = (*Relay)(nil)

// NewRelay starts the relay: it subscribes to this node's relay subject
// and starts keeping sessions alive.
func NewRelay(cfg RelayConfig) (*Relay, error) {
	switch {
	case cfg.Conn == nil:
		return nil, errors.New("cluster: RelayConfig.Conn is required")
	case cfg.Self == "":
		return nil, errors.New("cluster: RelayConfig.Self (this node's public URL) is required")
	case cfg.SFU == nil:
		return nil, errors.New("cluster: RelayConfig.SFU is required")
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.Expiry <= 0 {
		cfg.Expiry = 3 * cfg.KeepAlive
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultRelayTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Relay{
		cfg: cfg, self: nodeID(cfg.Self), log: cfg.Logger, nc: cfg.Conn,
		hosted: make(map[string]*hostSession), origins: make(map[string]*originSession),
		hostOK: make(map[string]time.Time), stop: make(chan struct{}),
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	sub, err := r.nc.Subscribe(hostSubject(r.self), r.receive)
	if err != nil {
		r.cancel()
		return nil, fmt.Errorf("cluster: relay: %w", err)
	}
	if err := r.nc.Flush(); err != nil {
		sub.Unsubscribe()
		r.cancel()
		return nil, fmt.Errorf("cluster: relay: %w", err)
	}
	r.sub = sub
	r.loops.Go(r.keepAliveLoop)
	return r, nil
}

// RelayStats counts a relay's sessions.
type RelayStats struct {
	// Hosted counts the sessions other nodes relay to this node.
	Hosted int
	// Relayed counts the sessions this node relays to other nodes.
	Relayed int
}

// Stats returns the relay's session counts.
func (r *Relay) Stats() RelayStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return RelayStats{Hosted: len(r.hosted), Relayed: len(r.origins)}
}

// Close ends every relayed session, both ways (their devices get
// CallEnded, "server shutting down"), and stops the relay.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	hosted := make([]*hostSession, 0, len(r.hosted))
	for _, h := range r.hosted {
		hosted = append(hosted, h)
	}
	origins := make([]*originSession, 0, len(r.origins))
	for _, o := range r.origins {
		origins = append(origins, o)
	}
	r.mu.Unlock()
	err := r.sub.Unsubscribe()
	close(r.stop)
	r.cancel()
	for _, h := range hosted {
		r.dropHosted(h, "server shutting down")
	}
	for _, o := range origins {
		o.end("server shutting down")
	}
	r.loops.Wait()
	if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("cluster: relay: %w", err)
	}
	return nil
}

// keepAliveLoop, every KeepAlive, keeps this node's relayed sessions
// alive on their hosts and expires the sessions relayed here that their
// origin stopped keeping alive.
func (r *Relay) keepAliveLoop() {
	t := time.NewTicker(r.cfg.KeepAlive)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		r.expireHosted()
		r.keepAlive()
	}
}

// sessionID returns a fresh random session id.
func sessionID() string {
	b := make([]byte, idLen/2)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// request sends m to the relay of node host and returns its reply.
func (r *Relay) request(ctx context.Context, host string, m toHost, timeout time.Duration) (hostReply, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return hostReply{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msg, err := r.nc.RequestWithContext(ctx, hostSubject(host), data)
	if err != nil {
		return hostReply{}, err
	}
	return decodeReply(msg.Data)
}

// publish sends a message that needs no reply; NATS errors are logged.
func (r *Relay) publish(subject string, m any) {
	data, err := json.Marshal(m)
	if err == nil {
		err = r.nc.Publish(subject, data)
	}
	if err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		r.log.Warn("cluster: relay: publish", "err", err)
	}
}

// respond answers a request, if the message is one.
func (r *Relay) respond(msg *nats.Msg, rep hostReply) {
	if msg.Reply != "" {
		r.publish(msg.Reply, rep)
	}
}

// errUnreachable is the device's error when the host does not answer.
var errUnreachable = &proto.Error{Code: proto.CodeUnavailable, Message: "call: the server node hosting the call does not answer; join again shortly"}

// Reasons of the CallEnded frames the relay makes.
const (
	reasonUnreachable = "lost the server node hosting the call"
	reasonHostGone    = "the call ended on the server node hosting it"
)

// ---- The host's side ----

// A hostSession is a device's session relayed to this node: a
// calls.Session of this node's SFU whose frames go back to the origin
// node. Its goroutine handles the device's frames in order.
type hostSession struct {
	r      *Relay
	id     string
	origin string
	sess   *calls.Session
	queue  chan hostWork
	done   chan struct{}
	once   sync.Once
	seen   atomic.Int64 // unix nanoseconds of the last open or keepalive
	joined atomic.Bool  // the join that opened it was handled: it expires from then on
}

// hostWork is a frame of the device, and where to answer it.
type hostWork struct {
	msg   *nats.Msg
	call  *proto.Call
	first bool // the join that opened the session: the session ends if it fails
}

// hostQueue bounds a session's frames waiting for the host: the origin
// waits for each frame's answer before it relays the next, so few wait.
const hostQueue = 8

// receive handles a message relayed to this node. It does not block: a
// session's frames are handled on its own goroutine.
func (r *Relay) receive(msg *nats.Msg) {
	m, err := decodeToHost(msg.Data)
	if err != nil {
		r.log.Warn("cluster: relay: dropped a message", "err", err, "bytes", len(msg.Data))
		r.respond(msg, hostReply{Error: &proto.Error{Code: proto.CodeBadRequest, Message: "call: bad relay message"}})
		return
	}
	switch m.Op {
	case opOpen:
		r.open(msg, m)
	case opFrame:
		h := r.hostedSession(m)
		if h == nil {
			r.respond(msg, hostReply{Error: &proto.Error{Code: proto.CodeNotFound, Message: "not in this call"}, Unknown: []string{m.Session}})
			return
		}
		select {
		case <-h.done:
			r.respond(msg, hostReply{Error: &proto.Error{Code: proto.CodeNotFound, Message: "not in this call"}, Unknown: []string{m.Session}})
		case h.queue <- hostWork{msg: msg, call: m.Call}:
		default:
			r.respond(msg, hostReply{Error: &proto.Error{Code: proto.CodeUnavailable, Message: "call: too many frames waiting; slow down"}})
		}
	case opClose:
		if h := r.hostedSession(m); h != nil {
			r.dropHosted(h, "")
		}
	case opKeepAlive:
		now := time.Now().UnixNano()
		var unknown []string
		r.mu.Lock()
		for _, id := range m.Sessions {
			if h := r.hosted[id]; h != nil && h.origin == m.Origin {
				h.seen.Store(now)
			} else {
				unknown = append(unknown, id)
			}
		}
		r.mu.Unlock()
		r.respond(msg, hostReply{Unknown: unknown})
	}
}

// hostedSession returns the session m is about, if the node that sent m
// relays it here.
func (r *Relay) hostedSession(m toHost) *hostSession {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h := r.hosted[m.Session]; h != nil && h.origin == m.Origin {
		return h
	}
	return nil
}

// open starts a session relayed here and has it handle its join.
func (r *Relay) open(msg *nats.Msg, m toHost) {
	h := &hostSession{r: r, id: m.Session, origin: m.Origin, queue: make(chan hostWork, hostQueue), done: make(chan struct{})}
	h.seen.Store(time.Now().UnixNano())
	subject := sessionSubject(m.Origin, m.Session)
	h.sess = r.cfg.SFU.ConnectRelayed(m.Device, func(c *proto.Call) { r.publish(subject, toOrigin{Call: c}) })
	h.queue <- hostWork{msg: msg, call: m.Call, first: true}
	r.mu.Lock()
	switch {
	case r.closed:
		r.mu.Unlock()
		r.respond(msg, hostReply{Error: &proto.Error{Code: proto.CodeUnavailable, Message: "server shutting down"}})
		return
	case r.hosted[m.Session] != nil:
		r.mu.Unlock()
		r.respond(msg, hostReply{Error: &proto.Error{Code: proto.CodeConflict, Message: "call: relayed session exists"}})
		return
	}
	r.hosted[m.Session] = h
	r.loops.Go(h.run)
	r.mu.Unlock()
}

// run handles the session's frames in order until the session ends, and
// then closes its calls.Session: the device leaves the room.
func (h *hostSession) run() {
	r := h.r
	for {
		select {
		case <-h.done:
			h.sess.Close()
			for {
				select {
				case w := <-h.queue:
					r.respond(w.msg, hostReply{Error: &proto.Error{Code: proto.CodeNotFound, Message: "not in this call"}, Unknown: []string{h.id}})
				default:
					return
				}
			}
		case w := <-h.queue:
			ctx, cancel := context.WithTimeout(r.ctx, r.cfg.Timeout)
			err := h.sess.Handle(ctx, w.call)
			cancel()
			if w.first {
				// The origin keeps the session alive once it has the
				// answer; the join may have taken a while.
				h.seen.Store(time.Now().UnixNano())
				h.joined.Store(true)
			}
			r.respond(w.msg, r.replyFor(err))
			if err != nil && w.first {
				r.dropHosted(h, "")
			}
		}
	}
}

// replyFor makes the reply to a frame the SFU handled with err.
func (r *Relay) replyFor(err error) hostReply {
	if err == nil {
		return hostReply{}
	}
	if errors.Is(err, calls.ErrNotHosted) {
		return hostReply{NotHosted: true}
	}
	if r.cfg.Errors != nil {
		return hostReply{Error: r.cfg.Errors(err)}
	}
	var pe *proto.Error
	if errors.As(err, &pe) {
		return hostReply{Error: pe}
	}
	r.log.Error("cluster: relay: a relayed call frame failed", "err", err)
	return hostReply{Error: &proto.Error{Code: proto.CodeInternal, Message: "internal error"}}
}

// dropHosted ends a session relayed here: its goroutine closes its
// calls.Session. A reason tells the origin node, which ends the device's
// call with it; without one, the origin ended the session itself.
func (r *Relay) dropHosted(h *hostSession, reason string) {
	r.mu.Lock()
	if r.hosted[h.id] == h {
		delete(r.hosted, h.id)
	}
	r.mu.Unlock()
	h.once.Do(func() {
		close(h.done)
		if reason != "" {
			r.publish(sessionSubject(h.origin, h.id), toOrigin{End: reason})
		}
	})
}

// expireHosted ends the sessions relayed here that their origin node has
// not kept alive for Expiry: that node died, or lost NATS.
func (r *Relay) expireHosted() {
	limit := time.Now().Add(-r.cfg.Expiry).UnixNano()
	var expired []*hostSession
	r.mu.Lock()
	for _, h := range r.hosted {
		if h.joined.Load() && h.seen.Load() < limit {
			expired = append(expired, h)
		}
	}
	r.mu.Unlock()
	for _, h := range expired {
		r.log.Info("cluster: relayed call session expired: its node stopped keeping it alive", "origin", h.origin)
		r.dropHosted(h, "the server node relaying the call stopped answering")
	}
}

// ---- The origin's side ----

// An originSession is a device's session for one room that this node
// relays to the room's host: the device's frames go to the host's relay
// subject, and the host's come back on the session's own subject.
type originSession struct {
	r      *Relay
	id     string
	host   string // the host's relay id
	group  []byte
	call   string
	send   func(*proto.Call)
	sub    *nats.Subscription
	live   atomic.Bool // the host accepted the join: keep the session alive
	closed atomic.Bool

	sendMu sync.Mutex // one frame at a time to send
	ended  bool       // the device got CallEnded; under sendMu

	once sync.Once
}

// Open implements calls.Remote: it relays join to the node at url.
func (r *Relay) Open(ctx context.Context, url, device string, join *proto.Call, send func(*proto.Call)) (calls.Relayed, error) {
	o := &originSession{r: r, id: sessionID(), host: nodeID(url), group: join.GroupID, call: join.CallID, send: send}
	if o.host == r.self {
		return nil, &proto.Error{Code: proto.CodeUnavailable, Message: "call: the room directory is inconsistent; join again"}
	}
	sub, err := r.nc.Subscribe(sessionSubject(r.self, o.id), o.receive)
	if err != nil {
		r.log.Warn("cluster: relay: subscribe", "err", err)
		return nil, errUnreachable
	}
	o.sub = sub
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		sub.Unsubscribe()
		return nil, &proto.Error{Code: proto.CodeUnavailable, Message: "server shutting down"}
	}
	r.origins[o.id] = o
	r.mu.Unlock()
	rep, err := r.request(ctx, o.host, toHost{Op: opOpen, Origin: r.self, Session: o.id, Device: device, Call: join}, r.cfg.Timeout)
	switch {
	case err != nil:
		o.Close() // the host may have it: tell it
		if ctx.Err() != nil {
			return nil, &proto.Error{Code: proto.CodeUnavailable, Message: "connection closing"}
		}
		r.log.Warn("cluster: relay: the host of a call did not answer a join", "host", o.host, "err", err)
		return nil, errUnreachable
	case rep.NotHosted:
		o.Close()
		return nil, calls.ErrNotHosted
	case rep.Error != nil:
		o.Close()
		return nil, rep.Error
	}
	r.mu.Lock()
	r.hostOK[o.host] = time.Now()
	r.mu.Unlock()
	o.live.Store(true)
	return o, nil
}

// receive handles a message from the host about this session.
func (o *originSession) receive(msg *nats.Msg) {
	m, err := decodeToOrigin(msg.Data)
	if err != nil {
		o.r.log.Warn("cluster: relay: dropped a message", "err", err, "bytes", len(msg.Data))
		return
	}
	if m.End != "" {
		o.end(m.End)
		return
	}
	if string(m.Call.GroupID) != string(o.group) || m.Call.CallID != o.call {
		o.r.log.Warn("cluster: relay: dropped a frame for another room")
		return
	}
	o.deliver(m.Call)
}

// deliver passes a frame to the device, unless its call ended.
func (o *originSession) deliver(c *proto.Call) {
	o.sendMu.Lock()
	defer o.sendMu.Unlock()
	if o.ended || o.closed.Load() {
		return
	}
	if c.Op == proto.CallEnded {
		o.ended = true
	}
	o.send(c)
}

// end ends the device's call, telling it why, and closes the session.
func (o *originSession) end(reason string) {
	o.deliver(&proto.Call{GroupID: o.group, CallID: o.call, Op: proto.CallEnded, Reason: reason})
	o.Close()
}

// Handle implements calls.Relayed: it relays a frame of the device to
// the host, in order (the device's frames are handled one at a time).
func (o *originSession) Handle(ctx context.Context, c *proto.Call) error {
	if o.closed.Load() {
		return &proto.Error{Code: proto.CodeNotFound, Message: "not in this call"}
	}
	rep, err := o.r.request(ctx, o.host, toHost{Op: opFrame, Origin: o.r.self, Session: o.id, Call: c}, o.r.cfg.Timeout)
	if err != nil {
		if ctx.Err() != nil {
			return &proto.Error{Code: proto.CodeUnavailable, Message: "connection closing"}
		}
		o.r.log.Warn("cluster: relay: the host of a call did not answer a frame", "host", o.host, "err", err)
		o.end(reasonUnreachable)
		return errUnreachable
	}
	for _, id := range rep.Unknown {
		if id == o.id {
			o.end(reasonHostGone)
		}
	}
	if rep.Error != nil {
		return rep.Error
	}
	return nil
}

// Close implements calls.Relayed: the host closes its side, and the
// device leaves the room there.
func (o *originSession) Close() {
	o.once.Do(func() {
		o.closed.Store(true)
		if err := o.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
			o.r.log.Debug("cluster: relay: unsubscribe", "err", err)
		}
		r := o.r
		r.mu.Lock()
		if r.origins[o.id] == o {
			delete(r.origins, o.id)
		}
		r.mu.Unlock()
		r.publish(hostSubject(o.host), toHost{Op: opClose, Origin: r.self, Session: o.id})
	})
}

// keepAlive tells each host which of the sessions relayed to it are
// alive, and ends the sessions the host no longer has, or of a host that
// has not answered for Expiry.
func (r *Relay) keepAlive() {
	byHost := make(map[string][]*originSession)
	r.mu.Lock()
	for _, o := range r.origins {
		if o.live.Load() {
			byHost[o.host] = append(byHost[o.host], o)
		}
	}
	for host := range r.hostOK {
		if byHost[host] == nil {
			delete(r.hostOK, host)
		}
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for host, sessions := range byHost {
		wg.Go(func() { r.keepAliveHost(host, sessions) })
	}
	wg.Wait()
}

// keepAliveHost keeps one host's sessions alive.
func (r *Relay) keepAliveHost(host string, sessions []*originSession) {
	byID := make(map[string]*originSession, len(sessions))
	ok := true
	for chunk := range slices.Chunk(sessions, maxKeepAliveIDs) {
		ids := make([]string, len(chunk))
		for i, o := range chunk {
			ids[i] = o.id
			byID[o.id] = o
		}
		rep, err := r.request(r.ctx, host, toHost{Op: opKeepAlive, Origin: r.self, Sessions: ids}, min(r.cfg.KeepAlive, r.cfg.Timeout))
		if err != nil {
			ok = false
			continue
		}
		for _, id := range rep.Unknown {
			if o := byID[id]; o != nil {
				o.end(reasonHostGone)
			}
		}
	}
	now := time.Now()
	r.mu.Lock()
	if ok {
		r.hostOK[host] = now
	}
	last, seen := r.hostOK[host]
	r.mu.Unlock()
	if ok || (seen && now.Sub(last) < r.cfg.Expiry) {
		return
	}
	r.log.Warn("cluster: relay: the host of calls stopped answering; ending them", "host", host, "sessions", len(sessions))
	for _, o := range sessions {
		o.end(reasonUnreachable)
	}
}
