package httpapi

import (
	"context"
	"encoding/json"
	"runtime"
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
//     comes before the message is durable. Answers that are ready at once
//     go in one write (see writeAnswers).
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
	wg    sync.WaitGroup // the sends in flight: queued and not yet answered

	// Answers are written in batches: the sends of a connection that one
	// commit made durable finish at about the same time; each queues its
	// answer at once, and the first to find no write under way (after
	// handing its message to the devices) writes every answer queued then,
	// and those queued meanwhile, in one write: one batch frame for a
	// client that takes them (appendFrames), instead of a write each.
	amu     sync.Mutex
	answers [][]byte // encoded answers not yet written
	writing bool     // a goroutine is writing answers
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
		defer cancel()
		sent, deliver, err := wait()
		reply := &proto.Frame{Type: proto.FrameSent, ID: id, Sent: &sent}
		if err != nil {
			reply = s.errorFrame(id, err)
		}
		b, err := json.Marshal(reply)
		if err != nil {
			panic(err) // cannot fail: a frame has only marshalable fields
		}
		// The answer is queued before the message is handed to the
		// devices, and written after: the answers of the connection's
		// sends that the same commit made durable are queued meanwhile, and
		// go in the same write; and no delivery waits for a write.
		p.amu.Lock()
		p.answers = append(p.answers, b)
		p.amu.Unlock()
		if deliver != nil {
			deliver()
		}
		s.writeAnswers()
	}()
	return nil
}

// writeAnswers writes the queued answers to sends, in one write, unless a
// write of answers is under way, which then writes them. A send stops
// being in flight (its slot is freed, a commit barrier may pass) once its
// answer is written.
func (s *session) writeAnswers() {
	p := &s.sends
	// The store wakes a commit's callers one by one, and each runs until
	// it blocks: yield once, so that the others queue their answers before
	// this one takes them.
	runtime.Gosched()
	p.amu.Lock()
	if p.writing {
		p.amu.Unlock()
		return
	}
	p.writing = true
	for len(p.answers) > 0 {
		batch := p.answers
		p.answers = nil
		p.amu.Unlock()
		s.writeFrames(batch) // a failed write closes the session
		for range batch {
			<-p.slots
			p.wg.Done()
		}
		p.amu.Lock()
	}
	p.writing = false
	p.amu.Unlock()
}
