package httpapi

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"

	"github.com/hush-chat/hush/internal/netpoll"
	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/server/calls"
	"github.com/hush-chat/hush/server/delivery"
	"github.com/hush-chat/hush/store"
)

// The push WebSocket holds no goroutine, no buffer and no timer while it is
// idle, so that one node can hold a great many of them:
//
//   - reading: after the upgrade the connection is registered with the
//     process's poller (package netpoll, one epoll instance and goroutine
//     for all connections). When it is readable a short-lived worker reads one
//     message, handles it, and re-arms the registration; so frames are
//     handled one at a time, in order. TLS connections (TLSListener) too:
//     the worker re-arms only once the *tls.Conn holds no more plaintext
//     or records, which the socket would not report (wstls.go).
//     Connections the poller cannot take (systems without epoll, TLS not
//     accepted by TLSListener, bytes that came with the upgrade) have a
//     reading goroutine instead.
//   - pushing: the delivery.Feed calls back when there is something to
//     push; a short-lived worker then takes everything pending (Feed.Next)
//     and writes it in one write: one batch frame for clients that asked
//     for them (proto.WebSocketBatchQuery), else one frame per message.
//   - timers: one sweep per process closes connections idle for
//     idleTimeout; the Feeds' polls run on the delivery hub's wheel.
//
// Frames are read and written with github.com/gobwas/ws on the raw
// connection (wsframe.go); the connection's bufio buffers from the HTTP
// server are dropped after the upgrade, and write buffers are pooled.

const (
	// idleTimeout closes a connection from which nothing (not even a ping
	// frame) arrived for this long. Clients ping every 30 seconds.
	idleTimeout = 90 * time.Second
	// sweepInterval is how often idle connections are looked for.
	sweepInterval = 15 * time.Second
	// writeTimeout closes a connection that does not take a frame in this
	// long: a slow consumer reconnects and catches up from the store.
	writeTimeout = 10 * time.Second
	// frameTimeout bounds the handling of one frame (a send waits for the
	// store's commit), and the reading of one that has begun to arrive.
	frameTimeout = 30 * time.Second
	// maxHandlers bounds the frames being handled at once.
	maxHandlers = 1024
	// statusTryAgainLater is the close code for a store that failed.
	statusTryAgainLater ws.StatusCode = 1013
	// pushQuery is the query parameter that, as "push=0", opens a
	// send-only connection: the server pushes nothing on it (no message,
	// typing or batch frames; answers to the client's frames only), and
	// the device's messages stay pending after its cursors for its other
	// connections. Default (absent, or "1"): pushing.
	pushQuery = "push"
)

// live is what all WebSockets of the process share: the poller and the
// idle sweep, which run only while there are connections.
var live struct {
	mu       sync.Mutex
	sessions map[*session]struct{}
	poller   *netpoll.Poller // nil where epoll is not available
	stop     chan struct{}   // stops the sweep
}

// handlers is the semaphore of maxHandlers. It bounds the handling only:
// a client that sends part of a frame and stalls holds its own reader and
// no one else's.
var handlers = make(chan struct{}, maxHandlers)

// session is one push WebSocket.
type session struct {
	api    *API
	conn   wsConn
	r      io.Reader // conn, after bytes that arrived with the upgrade
	dev    store.Device
	feed   *delivery.Feed
	batch  bool                           // the client takes batch frames
	poller *netpoll.Poller                // the process's, when the session started
	poll   atomic.Pointer[netpoll.Handle] // nil with a reading goroutine; set under wmu
	sc     syscall.Conn                   // the connection, with the poller
	nb     *nbConn                        // under TLS, with the poller (wstls.go)

	// mu is held while a frame is handled, so that goAway closes the
	// connection between frames, never in the middle of a send.
	mu      sync.Mutex
	closing bool
	sends   sendPipe // pipelined sends (wssend.go)

	wmu    sync.Mutex // serialises writes
	closed atomic.Bool
	once   sync.Once

	pushes   atomic.Int32 // wake-ups not yet served; a push worker runs while > 0
	lastRead atomic.Int64 // unix nanoseconds of the last frame read

	// ctx ends with the session; call is its call signalling (wscall.go),
	// nil without an SFU.
	ctx    context.Context
	cancel context.CancelFunc
	call   *calls.Session
}

// wsConn is the connection as a session holds it.
type wsConn struct {
	net.Conn
	s *session
}

// CloseNow ends the session at once (after an asynchronous write failed).
func (c wsConn) CloseNow() error {
	c.s.close(ws.StatusInternalServerError, "write failed")
	return nil
}

func websocketProtocols(r *http.Request) []string {
	var out []string
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(h, ",") {
			out = append(out, strings.TrimSpace(p))
		}
	}
	return out
}

// sameOrigin refuses a browser's cross-origin upgrade (the Origin header,
// when sent, must name this host).
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

var upgrader = ws.HTTPUpgrader{
	Protocol: func(p string) bool { return p == proto.WebSocketProtocol },
	Timeout:  writeTimeout,
}

func (a *API) webSocket(w http.ResponseWriter, r *http.Request, dev *store.Device) error {
	if !sameOrigin(r) {
		return &proto.Error{Code: proto.CodeForbidden, Message: "cross-origin WebSocket refused"}
	}
	// Only the ids are kept: not the hash of the device's secret, nor its
	// credential, for as long as the connection lives.
	q := r.URL.Query()
	s := &session{api: a, dev: store.Device{ID: dev.ID, UserID: dev.UserID}, batch: q.Get("batch") == "1"}
	var pushOn bool
	switch q.Get(pushQuery) {
	case "", "1":
		pushOn = true
	case "0":
	default:
		return &proto.Error{Code: proto.CodeBadRequest, Message: pushQuery + " must be 0 or 1"}
	}
	s.pushes.Store(1) // held until the session is set up: wake-ups only count
	var feed *delivery.Feed
	if pushOn {
		var err error
		if feed, err = a.Delivery.Follow(r.Context(), dev.ID, s.wake); err != nil {
			return err
		}
	} else {
		// Send-only: nothing is pushed; the Feed only watches for the
		// device's revocation.
		feed = a.Delivery.FollowSendOnly(dev.ID, s.wake)
	}
	conn, rw, _, err := upgrader.Upgrade(r, w)
	if err != nil {
		feed.Close()
		if conn != nil {
			conn.Close()
		}
		return nil // Upgrade has answered the client
	}
	if sw, ok := w.(*statusWriter); ok {
		sw.status = http.StatusSwitchingProtocols
	}
	s.conn, s.r, s.feed = wsConn{conn, s}, conn, feed
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.call = s.callSession(s.ctx)
	if n := rw.Reader.Buffered(); n > 0 {
		// The client did not wait for the upgrade's answer.
		early, _ := rw.Reader.Peek(n)
		s.r = io.MultiReader(strings.NewReader(string(early)), conn)
	}
	s.lastRead.Store(time.Now().UnixNano())

	if !a.addSession(s) {
		s.close(ws.StatusGoingAway, "server shutting down")
		return nil
	}
	if err := a.Store.TouchDevice(r.Context(), dev.ID, time.Now()); err != nil {
		a.Logger.Warn("touch device", "device", dev.ID, "err", err)
	}
	if err := s.writeFrame(&proto.Frame{Type: proto.FrameHello, Hello: &proto.Hello{Version: proto.Version, DeviceID: dev.ID.String()}}); err != nil {
		return nil
	}
	go s.drain() // the first push: everything pending

	var nb *nbConn // TLS over a connection the poller can take
	sc, ok := conn.(syscall.Conn)
	if tc, isTLS := conn.(*tls.Conn); isTLS {
		if nb, ok = tc.NetConn().(*nbConn); ok {
			sc = nb
		}
	}
	if ok && s.r == io.Reader(conn) && s.poller != nil {
		// Registered under wmu, so that close, which takes the Handle out
		// before the descriptor is closed, sees it.
		s.wmu.Lock()
		if !s.closed.Load() {
			s.sc, s.nb = sc, nb
			if h, err := s.poller.Add(sc, s.readable); err == nil {
				s.poll.Store(h)
			}
		}
		s.wmu.Unlock()
		if h := s.poll.Load(); h != nil {
			if s.nb != nil {
				// Should the TLS connection hold records read from the
				// socket before the upgrade, look in it before waiting for
				// the socket. (net/http's background read normally takes
				// the first byte of any, which sends the connection to a
				// reading goroutine as bytes that came with the upgrade.)
				s.readable()
			} else if h.Resume() != nil {
				s.close(ws.StatusInternalServerError, "poller")
			}
			return nil
		}
	}
	go s.readLoop()
	return nil
}

// addSession adds s to the API's sessions and to the live ones, starting
// the poller and the idle sweep with the first. false while the API is
// draining.
func (a *API) addSession(s *session) bool {
	a.sessionsMu.Lock()
	defer a.sessionsMu.Unlock()
	if a.draining.Load() {
		return false
	}
	a.sessions[s] = struct{}{}
	a.sessionsWG.Add(1)
	a.Metrics.WebSockets.Inc()
	live.mu.Lock()
	if len(live.sessions) == 0 {
		live.sessions = make(map[*session]struct{})
		live.poller, _ = netpoll.New() // nil where unsupported: reading goroutines
		live.stop = make(chan struct{})
		go sweep(live.stop)
	}
	live.sessions[s] = struct{}{}
	s.poller = live.poller
	live.mu.Unlock()
	return true
}

// removeSession removes s, stopping the poller and the sweep with the
// last live session.
func (a *API) removeSession(s *session) {
	a.sessionsMu.Lock()
	_, ok := a.sessions[s]
	delete(a.sessions, s)
	a.sessionsMu.Unlock()
	if !ok {
		return
	}
	a.Metrics.WebSockets.Dec()
	live.mu.Lock()
	delete(live.sessions, s)
	if len(live.sessions) == 0 {
		close(live.stop)
		if live.poller != nil {
			live.poller.Close()
			live.poller = nil
		}
	}
	live.mu.Unlock()
	a.sessionsWG.Done()
}

// sweep closes the connections idle for longer than idleTimeout, and
// retires the workers (workers.go) that no job needed for a while.
func sweep(stop <-chan struct{}) {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	r := time.NewTicker(retireInterval)
	defer r.Stop()
	var idle []*session
	for {
		select {
		case <-stop:
			return
		case <-r.C:
			retireIdleWorkers()
			continue
		case <-t.C:
		}
		limit := time.Now().Add(-idleTimeout).UnixNano()
		live.mu.Lock()
		for s := range live.sessions {
			if s.lastRead.Load() < limit {
				idle = append(idle, s)
			}
		}
		live.mu.Unlock()
		for i, s := range idle {
			go s.close(ws.StatusPolicyViolation, "idle")
			idle[i] = nil
		}
		idle = idle[:0]
	}
}

// goAway closes the connection with StatusGoingAway after the frame being
// handled, if any.
func (s *session) goAway() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.sends.wait() // answer the sends in flight first
	s.close(ws.StatusGoingAway, "server shutting down")
}

// close ends the session: a close frame (best effort), the connection,
// the Feed. Safe to call more than once and from any goroutine.
func (s *session) close(code ws.StatusCode, reason string) {
	s.once.Do(func() {
		s.wmu.Lock()
		s.closed.Store(true)
		if h := s.poll.Load(); h != nil {
			h.Close() // before the descriptor can be reused
		}
		if f, err := ws.CompileFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(code, reason))); err == nil {
			s.conn.SetWriteDeadline(time.Now().Add(time.Second))
			s.conn.Write(f)
		}
		s.conn.Close()
		s.wmu.Unlock()
		s.cancel()
		if s.call != nil {
			s.call.Close()
		}
		s.feed.Close()
		s.api.removeSession(s)
	})
}

// write sends one frame; it is safe to call from any goroutine (call
// signalling writes from the SFU's). ctx is not used: a write is bounded
// by writeTimeout.
func (s *session) write(_ context.Context, f *proto.Frame) error { return s.writeFrame(f) }

// writeFrame sends one frame. It is safe to call from any goroutine.
func (s *session) writeFrame(f *proto.Frame) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return s.writeFrames([][]byte{b})
}

var errClosed = errors.New("websocket: closed")

// writeFrames sends encoded frames in one write, in batch frames if the
// client takes them. A connection that does not take them within
// writeTimeout is closed.
func (s *session) writeFrames(frames [][]byte) error {
	bp := writeBufs.Get().(*[]byte)
	b := appendFrames((*bp)[:0], frames, s.batch)
	s.wmu.Lock()
	err := errClosed
	if !s.closed.Load() {
		s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		_, err = s.conn.Write(b)
	}
	s.wmu.Unlock()
	if cap(b) <= maxPooledBuf {
		*bp = b[:0]
		writeBufs.Put(bp)
	}
	if err != nil && !errors.Is(err, errClosed) {
		s.close(ws.StatusPolicyViolation, "write timeout")
	}
	return err
}

// wake is the Feed's callback: it starts a push worker unless one runs,
// which then serves this wake-up too.
func (s *session) wake() {
	if s.pushes.Add(1) == 1 {
		runJob(s.drain)
	}
}

// drain pushes until no wake-up is left unserved.
func (s *session) drain() {
	for {
		n := s.pushes.Load()
		if !s.push() {
			return // closed: pushes stays above 0, so no worker starts again
		}
		if s.pushes.CompareAndSwap(n, 0) {
			return
		}
	}
}

// push writes what the Feed has pending; false once the session is over.
func (s *session) push() bool {
	if s.closed.Load() {
		return false
	}
	// Next bounds its reads of the store itself (most pushes read nothing
	// from it): a timer per push here was 8 % of a busy server's CPU.
	p, err := s.feed.Next(context.Background())
	if errors.Is(err, delivery.ErrRevoked) {
		s.close(ws.StatusPolicyViolation, "device revoked")
		return false
	}
	if err != nil {
		if !s.closed.Load() {
			s.api.Logger.Warn("push: read pending", "device", s.dev.ID, "err", err)
			s.close(statusTryAgainLater, "store unavailable")
		}
		return false
	}
	frames := p.Messages
	for i := range p.Typing {
		b, err := json.Marshal(proto.Frame{Type: proto.FrameTyping, Typing: &p.Typing[i]})
		if err == nil {
			frames = append(frames, b)
		}
	}
	if len(frames) == 0 {
		return true
	}
	return s.writeFrames(frames) == nil
}

// maxReadsPerWake bounds the messages one worker of the poller reads
// before it lets the poller watch the connection again.
const maxReadsPerWake = 64

// readable is the poller's callback: a worker reads and handles one
// message, and the next ones while more bytes wait (a client pipelining
// its sends: no wake-up, worker and re-arming of the poller per frame),
// up to maxReadsPerWake, then waits for the next.
func (s *session) readable() { runJob(s.readBurst) }

func (s *session) readBurst() {
	if s.nb != nil {
		s.readBurstTLS()
		return
	}
	for range maxReadsPerWake {
		if !s.readOne(s.r) {
			return
		}
		if !readyToRead(s.sc) {
			break
		}
	}
	s.resume()
}

// readBurstTLS is readBurst for a TLS connection: the poller is re-armed
// only once the TLS connection holds nothing more (see wstls.go); the
// socket may have nothing to report while it does.
func (s *session) readBurstTLS() {
	for range maxReadsPerWake {
		r, open := s.probe()
		if !open {
			return
		}
		if r == nil {
			s.resume()
			return
		}
		if !s.readOne(r) {
			return
		}
	}
	// More may be waiting inside the TLS connection: another worker looks.
	runJob(s.readBurst)
}

// resume re-arms the poller.
func (s *session) resume() {
	if s.poll.Load().Resume() != nil {
		s.close(ws.StatusInternalServerError, "poller")
	}
}

// readLoop reads and handles messages until the connection ends, for
// connections the poller does not watch.
func (s *session) readLoop() {
	for s.readOne(s.r) {
	}
}

// readOne reads one message from r (the connection, perhaps after bytes
// read already) and handles it; false if the session is over.
func (s *session) readOne(r io.Reader) bool {
	if s.closed.Load() {
		return false
	}
	if s.poll.Load() != nil {
		s.conn.SetReadDeadline(time.Now().Add(frameTimeout))
	} else {
		s.conn.SetReadDeadline(time.Now().Add(idleTimeout))
	}
	op, data, err := readMessage(r, proto.MaxRequestBytes, s.control)
	if err != nil {
		var ce *closeError
		switch {
		case errors.As(err, &ce):
			s.close(ce.code, ce.reason)
		case errors.Is(err, errPeerClosed):
			s.close(ws.StatusNormalClosure, "")
		default: // EOF, reset, deadline
			s.close(ws.StatusNormalClosure, "")
		}
		return false
	}
	s.lastRead.Store(time.Now().UnixNano())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	handlers <- struct{}{}
	reply := s.handle(op, data)
	<-handlers
	if reply != nil {
		return s.writeFrame(reply) == nil
	}
	return true
}

// control answers the client's control frames.
func (s *session) control(op ws.OpCode, payload []byte) error {
	s.lastRead.Store(time.Now().UnixNano())
	switch op {
	case ws.OpPing:
		b := append(appendHeader(nil, ws.OpPong, len(payload)), payload...)
		s.wmu.Lock()
		defer s.wmu.Unlock()
		if s.closed.Load() {
			return errClosed
		}
		s.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		_, err := s.conn.Write(b)
		return err
	case ws.OpClose:
		code, _ := ws.ParseCloseFrameData(payload)
		if code.Empty() {
			code = ws.StatusNormalClosure
		}
		s.close(code, "")
	}
	return nil
}

// handle handles one message and returns the reply, if any.
func (s *session) handle(op ws.OpCode, data []byte) *proto.Frame {
	var f proto.Frame
	if op != ws.OpText {
		return errorFrame(0, &proto.Error{Code: proto.CodeBadRequest, Message: "frames are JSON text"})
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return s.errorFrame(0, jsonError(err))
	}
	a := s.api
	a.Metrics.Frames.WithLabelValues(frameLabel(f.Type)).Inc()
	if f.Type == proto.FramePing {
		return &proto.Frame{Type: proto.FramePong, ID: f.ID}
	}
	if !a.devices.allow(string(s.dev.ID[:])) {
		a.Metrics.RateLimited.WithLabelValues("device").Inc()
		return errorFrame(f.ID, errRateLimited)
	}
	ctx, cancel := context.WithTimeout(context.Background(), frameTimeout)
	defer cancel()
	switch f.Type {
	case proto.FrameSend:
		return s.send(&f) // pipelined: wssend.go
	case proto.FrameAck:
		if f.Ack == nil {
			return errorFrame(f.ID, &proto.Error{Code: proto.CodeBadRequest, Message: "ack frame without ack"})
		}
		if err := a.Delivery.Ack(ctx, s.dev.ID, f.Ack.Acks); err != nil {
			return s.errorFrame(f.ID, err)
		}
		s.feed.Acked()
		return nil
	case proto.FrameCall:
		return s.handleCall(ctx, &f)
	case proto.FrameTyping:
		if f.Typing == nil {
			return errorFrame(f.ID, &proto.Error{Code: proto.CodeBadRequest, Message: "typing frame without typing"})
		}
		if err := a.Delivery.Typing(ctx, s.dev.ID, f.Typing); err != nil {
			return s.errorFrame(f.ID, err)
		}
		return nil
	}
	return errorFrame(f.ID, &proto.Error{Code: proto.CodeBadRequest, Message: "unknown frame type"})
}

func (s *session) errorFrame(id uint64, err error) *proto.Frame {
	pe := toProto(err)
	if pe.Code == proto.CodeInternal && !errors.Is(err, context.Canceled) {
		s.api.Logger.Error("frame failed", "device", s.dev.ID, "err", err)
	}
	return errorFrame(id, pe)
}

func errorFrame(id uint64, pe *proto.Error) *proto.Frame {
	return &proto.Frame{Type: proto.FrameError, ID: id, Error: pe}
}

// frameLabel keeps the metric's label set small whatever clients send.
func frameLabel(t string) string {
	switch t {
	case proto.FrameSend, proto.FrameAck, proto.FrameTyping, proto.FramePing, proto.FrameCall:
		return t
	}
	return "other"
}
