package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/server/delivery"
	"github.com/hush-chat/hush/store"
)

const (
	// idleTimeout closes a connection from which nothing (not even a ping
	// frame) arrived for this long. Clients ping every 30 seconds.
	idleTimeout = 90 * time.Second
	// writeTimeout closes a connection that does not take a frame in this
	// long: a slow consumer reconnects and catches up from the store.
	writeTimeout = 10 * time.Second
	// frameTimeout bounds the handling of one frame (a send waits for the
	// store's commit).
	frameTimeout = 30 * time.Second
)

// session is one push WebSocket: a reader that handles the device's
// frames in order, and a pusher that writes what the Feed returns.
type session struct {
	api  *API
	conn *websocket.Conn
	dev  store.Device
	feed *delivery.Feed

	// mu is held while a frame is handled, so that goAway closes the
	// connection between frames, never in the middle of a send.
	mu      sync.Mutex
	closing bool
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

func (a *API) webSocket(w http.ResponseWriter, r *http.Request, dev *store.Device) error {
	feed, err := a.Delivery.Follow(r.Context(), dev.ID)
	if err != nil {
		return err
	}
	defer feed.Close()
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{proto.WebSocketProtocol}})
	if err != nil {
		return nil // Accept has answered the client
	}
	conn.SetReadLimit(proto.MaxRequestBytes)
	s := &session{api: a, conn: conn, dev: *dev, feed: feed}

	a.sessionsMu.Lock()
	if a.draining.Load() {
		a.sessionsMu.Unlock()
		conn.Close(websocket.StatusGoingAway, "server shutting down")
		return nil
	}
	a.sessions[s] = struct{}{}
	a.sessionsWG.Add(1)
	a.sessionsMu.Unlock()
	a.Metrics.WebSockets.Inc()
	defer func() {
		a.Metrics.WebSockets.Dec()
		a.sessionsMu.Lock()
		delete(a.sessions, s)
		a.sessionsMu.Unlock()
		a.sessionsWG.Done()
	}()

	if err := a.Store.TouchDevice(r.Context(), dev.ID, time.Now()); err != nil {
		a.Logger.Warn("touch device", "device", dev.ID, "err", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.write(ctx, &proto.Frame{Type: proto.FrameHello, Hello: &proto.Hello{Version: proto.Version, DeviceID: dev.ID.String()}}); err != nil {
		return nil
	}
	pushed := make(chan struct{})
	go func() {
		defer close(pushed)
		s.push(ctx)
		cancel()
	}()
	s.read(ctx)
	cancel()
	<-pushed
	conn.CloseNow()
	return nil
}

// goAway closes the connection with StatusGoingAway after the frame being
// handled, if any.
func (s *session) goAway() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.conn.Close(websocket.StatusGoingAway, "server shutting down")
}

// write sends one frame.
func (s *session) write(ctx context.Context, f *proto.Frame) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return s.writeRaw(ctx, b)
}

// writeRaw sends one encoded frame.
func (s *session) writeRaw(ctx context.Context, frame []byte) error {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	return s.conn.Write(ctx, websocket.MessageText, frame)
}

// push writes the device's pending messages and typing signals until ctx
// ends or the connection fails.
func (s *session) push(ctx context.Context) {
	poll := false
	for {
		frames, err := s.feed.Next(ctx, poll)
		if errors.Is(err, delivery.ErrRevoked) {
			s.conn.Close(websocket.StatusPolicyViolation, "device revoked")
			return
		}
		if err != nil {
			if ctx.Err() == nil {
				s.api.Logger.Warn("push: read pending", "device", s.dev.ID, "err", err)
				s.conn.Close(websocket.StatusTryAgainLater, "store unavailable")
			}
			return
		}
		for _, frame := range frames {
			if s.writeRaw(ctx, frame) != nil {
				return
			}
		}
		poll = false
		select {
		case <-ctx.Done():
			return
		case <-s.feed.Revoked():
			s.conn.Close(websocket.StatusPolicyViolation, "device revoked")
			return
		case <-s.feed.Wake():
		case <-s.feed.Poll():
			poll = true
		case t := <-s.feed.Typing():
			if s.write(ctx, &proto.Frame{Type: proto.FrameTyping, Typing: &t}) != nil {
				return
			}
		}
	}
}

// read handles the device's frames, in order, until the connection ends.
func (s *session) read(ctx context.Context) {
	for {
		rctx, cancel := context.WithTimeout(ctx, idleTimeout)
		typ, data, err := s.conn.Read(rctx)
		cancel()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			return
		}
		reply := s.handle(typ, data)
		var err2 error
		if reply != nil {
			err2 = s.write(ctx, reply)
		}
		s.mu.Unlock()
		if err2 != nil {
			return
		}
	}
}

// handle handles one frame and returns the reply, if any.
func (s *session) handle(typ websocket.MessageType, data []byte) *proto.Frame {
	var f proto.Frame
	if typ != websocket.MessageText {
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
		if f.Send == nil {
			return errorFrame(f.ID, &proto.Error{Code: proto.CodeBadRequest, Message: "send frame without send"})
		}
		sent, err := a.Delivery.Send(ctx, s.dev.ID, f.Send.GroupID, &f.Send.Send)
		if err != nil {
			return s.errorFrame(f.ID, err)
		}
		return &proto.Frame{Type: proto.FrameSent, ID: f.ID, Sent: &sent}
	case proto.FrameAck:
		if f.Ack == nil {
			return errorFrame(f.ID, &proto.Error{Code: proto.CodeBadRequest, Message: "ack frame without ack"})
		}
		if err := a.Delivery.Ack(ctx, s.dev.ID, f.Ack.Acks); err != nil {
			return s.errorFrame(f.ID, err)
		}
		s.feed.Acked()
		return nil
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
	case proto.FrameSend, proto.FrameAck, proto.FrameTyping, proto.FramePing:
		return t
	}
	return "other"
}
