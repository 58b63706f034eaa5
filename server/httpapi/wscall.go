package httpapi

import (
	"context"

	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/server/calls"
)

// Call signalling on the push WebSocket: each authenticated connection
// has one calls.Session, made when the connection opens and closed when
// it ends (which takes the device out of every call it joined over that
// connection). "call" frames from the device go to the session; the
// SFU's frames (offers, ended) are written to the connection as they
// come. A refused call frame is answered by an error frame with its id;
// an accepted one has no reply of its own (the SFU's offer follows a
// join).

// callSession starts the connection's call session, or returns nil if
// the server has no SFU. ctx ends with the connection.
func (s *session) callSession(ctx context.Context) *calls.Session {
	if s.api.Calls == nil {
		return nil
	}
	return s.api.Calls.Connect(s.dev.ID.String(), func(c *proto.Call) {
		// The WebSocket takes concurrent writes; a write that fails ends
		// the connection, and with it the session.
		if err := s.write(ctx, &proto.Frame{Type: proto.FrameCall, Call: c}); err != nil {
			s.conn.CloseNow()
		}
	})
}

// handleCall handles one "call" frame from the device.
func (s *session) handleCall(ctx context.Context, f *proto.Frame) *proto.Frame {
	if s.call == nil {
		return errorFrame(f.ID, &proto.Error{Code: proto.CodeUnavailable, Message: "this server does not relay calls"})
	}
	if f.Call == nil {
		return errorFrame(f.ID, &proto.Error{Code: proto.CodeBadRequest, Message: "call frame without call"})
	}
	if err := s.call.Handle(ctx, f.Call); err != nil {
		return s.errorFrame(f.ID, err)
	}
	return nil
}
