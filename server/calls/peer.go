package calls

import (
	"errors"
	"sync"

	"github.com/pion/webrtc/v4"

	"github.com/hush-chat/hush/proto"
)

// errRoomClosed is returned by room.join when the room emptied between
// its lookup and the join; the caller looks the room up again.
var errRoomClosed = errors.New("calls: room closed")

// A peer is one device in one room, with its PeerConnection to the SFU.
type peer struct {
	room    *room
	session *Session
	device  string
	pc      *webrtc.PeerConnection
	inboxes *inboxes // of pc's RTP streams

	// sigMu serialises the offer/answer exchange. The SFU always offers;
	// while an offer awaits its answer, changes wait in again.
	sigMu       sync.Mutex
	offerOut    bool
	again       bool
	sentServers bool
	ended       bool

	finishOnce sync.Once
}

// negotiate sends the device an offer for the PeerConnection's current
// tracks, or, if an offer is out, has one sent when it is answered.
func (p *peer) negotiate() error {
	p.sigMu.Lock()
	defer p.sigMu.Unlock()
	if p.ended {
		return nil
	}
	if p.offerOut {
		p.again = true
		return nil
	}
	return p.offer()
}

// renegotiate is negotiate for changes the device did not ask for; a
// failure is logged.
func (p *peer) renegotiate() {
	if err := p.negotiate(); err != nil {
		p.room.sfu.log.Debug("calls: renegotiate", "device", p.device, "err", err)
	}
}

// offer makes, sets and sends an offer with every ICE candidate in it.
// p.sigMu is held.
func (p *peer) offer() error {
	o, err := p.pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(o); err != nil {
		return err
	}
	<-gathered
	c := &proto.Call{GroupID: []byte(p.room.key.group), CallID: p.room.key.call, Op: proto.CallOffer, SDP: p.pc.LocalDescription().SDP}
	if !p.sentServers {
		c.ICEServers = p.room.sfu.opts.ICEServers
		p.sentServers = true
	}
	p.offerOut = true
	p.session.send(c)
	return nil
}

// answer applies the device's answer to the last offer, and sends the
// next offer if the tracks changed meanwhile.
func (p *peer) answer(sdp string) error {
	p.sigMu.Lock()
	defer p.sigMu.Unlock()
	if !p.offerOut || p.ended {
		return &proto.Error{Code: proto.CodeConflict, Message: "no offer to answer"}
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		return &proto.Error{Code: proto.CodeBadRequest, Message: "answer: " + err.Error()}
	}
	p.offerOut = false
	if p.again {
		p.again = false
		return p.offer()
	}
	return nil
}

// onTrack forwards a track the device publishes, for as long as it lasts:
// the track's inbox hands the forwarder each packet.
func (p *peer) onTrack(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	f, changed := p.room.publish(p, t)
	if f == nil {
		return
	}
	if !p.inboxes.attach(uint32(t.SSRC()), f.pull) {
		// pion opens a track's stream, and so its inbox, before OnTrack.
		p.room.sfu.log.Warn("calls: no stream for a published track", "device", p.device, "kind", t.Kind())
	}
	for _, q := range changed {
		q.renegotiate()
	}
}

// leave is the device leaving the room on its own.
func (p *peer) leave() {
	p.room.leave(p)
	p.finish("")
}

// end takes the device out of the room and tells it why.
func (p *peer) end(reason string) {
	p.room.leave(p)
	p.finish(reason)
}

// finish closes p's PeerConnection once p is out of the room and, given
// a reason, sends the device a CallEnded frame.
func (p *peer) finish(reason string) {
	p.finishOnce.Do(func() {
		p.sigMu.Lock()
		p.ended = true
		p.sigMu.Unlock()
		p.session.forget(p)
		if err := p.pc.Close(); err != nil {
			p.room.sfu.log.Debug("calls: close", "device", p.device, "err", err)
		}
		if reason != "" {
			p.session.send(&proto.Call{GroupID: []byte(p.room.key.group), CallID: p.room.key.call, Op: proto.CallEnded, Reason: reason})
		}
	})
}
