package httpapi

import (
	"context"
	"sync"

	"github.com/hush-chat/hush/proto"
)

// Pipelined sends. A device flushing its outbox sends many frames without
// waiting for each answer; waiting for each message's commit before
// reading the next frame would cap one connection at one message per
// commit (a few milliseconds of fsync). So a send frame is handled in two
// steps:
//
//   - in order, by the connection's reader: the message is checked and its
//     append queued in the store (delivery.Service.QueueSend). The store
//     appends what one caller queued in the order it was queued, so the
//     device's messages enter the group's log in the order of its frames;
//   - in the background: a goroutine waits until the message is durable,
//     then answers with its sent frame (or error frame), matched by the
//     frame's ID. Answers may come in any order and between pushes; none
//     comes before the message is durable.
//
// At most maxInFlightSends sends of one connection are queued and not yet
// answered; beyond that the reader waits for one to finish, so a client
// cannot make the server hold an unbounded number of messages. A commit is
// a barrier: it is handled only once every earlier send of the connection
// has been answered (so that it follows them in the log and is checked
// against what they did), and the frames after it are read only once it
// is answered. Each frame's error stays its own.

// maxInFlightSends bounds the sends of one connection being stored.
const maxInFlightSends = 64

// sendPipe is the state of a connection's pipelined sends.
type sendPipe struct {
	// slots holds a token per send in flight; made by the reader at its
	// first send (only the reader adds tokens, under session.mu).
	slots chan struct{}
	wg    sync.WaitGroup // the sends in flight
}

// wait returns once every send in flight has been answered.
func (p *sendPipe) wait() { p.wg.Wait() }

// send handles a send frame. It returns the reply when it has one at once
// (an error found before queueing, or a commit's answer), nil when the
// answer will be written once the message is durable.
func (s *session) send(f *proto.Frame) *proto.Frame {
	if f.Send == nil {
		return errorFrame(f.ID, &proto.Error{Code: proto.CodeBadRequest, Message: "send frame without send"})
	}
	a := s.api
	p := &s.sends
	if f.Send.Kind == proto.KindCommit {
		p.wait() // a barrier: after every earlier send
		ctx, cancel := context.WithTimeout(context.Background(), frameTimeout)
		defer cancel()
		sent, err := a.Delivery.Send(ctx, s.dev.ID, f.Send.GroupID, &f.Send.Send)
		if err != nil {
			return s.errorFrame(f.ID, err)
		}
		return &proto.Frame{Type: proto.FrameSent, ID: f.ID, Sent: &sent}
	}
	if p.slots == nil {
		p.slots = make(chan struct{}, maxInFlightSends)
	}
	p.slots <- struct{}{} // with maxInFlightSends in flight, the reader waits here
	// Not the session's context: a message whose append has been queued is
	// stored even if the connection ends; the client's retry with the same
	// client message id then finds it.
	ctx, cancel := context.WithTimeout(context.Background(), frameTimeout)
	wait, err := a.Delivery.QueueSend(ctx, s.dev.ID, f.Send.GroupID, &f.Send.Send)
	if err != nil {
		cancel()
		<-p.slots
		return s.errorFrame(f.ID, err)
	}
	p.wg.Add(1)
	id := f.ID
	go func() {
		defer p.wg.Done()
		defer func() { <-p.slots }()
		sent, err := wait()
		cancel()
		reply := &proto.Frame{Type: proto.FrameSent, ID: id, Sent: &sent}
		if err != nil {
			reply = s.errorFrame(id, err)
		}
		s.writeFrame(reply) // a failed write closes the session
	}()
	return nil
}
