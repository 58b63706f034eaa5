package delivery

import (
	"context"
	"time"

	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/store"
)

// Disappearing messages. A Send with a Timer is stored with an expiry the
// server computes by its own clock, acceptance + Timer + the delivery
// grace: the store deletes it as soon as every recipient has acknowledged
// it (store.Groups.Ack), and at that expiry at the latest. The blobs it
// declares are tied to it (store.Blobs.ExpireBlobs) and deleted with it.
// The server learns the timer and the blob ids, which it knew already;
// never the content.

// checkTimer checks a Send's Timer and Blobs and returns the blob ids.
func checkTimer(req *proto.Send) ([]store.BlobID, error) {
	timer := time.Duration(req.Timer) * time.Second
	switch {
	case req.Timer == 0 && len(req.Blobs) > 0:
		return nil, badRequest("blobs go with a timer")
	case req.Timer == 0:
		return nil, nil
	case req.Kind != proto.KindApplication:
		return nil, badRequest("only application messages have a timer")
	case timer < proto.MinTimer || timer > proto.MaxTimer:
		return nil, badRequest("timer must be from %d to %d seconds", int(proto.MinTimer.Seconds()), int(proto.MaxTimer.Seconds()))
	case len(req.Blobs) > proto.MaxMessageBlobs:
		return nil, tooLarge("blobs lists more than %d blobs", proto.MaxMessageBlobs)
	}
	ids := make([]store.BlobID, len(req.Blobs))
	for i, b := range req.Blobs {
		id, err := store.ParseBlobID(b)
		if err != nil {
			return nil, badRequest("blobs[%d] is not a blob id", i)
		}
		ids[i] = id
	}
	return ids, nil
}

// expiry is when a message with that timer, accepted at now, is deleted
// at the latest; nil for a message without a timer.
func (s *Service) expiry(now time.Time, timer uint32) *time.Time {
	if timer == 0 {
		return nil
	}
	t := now.Add(time.Duration(timer)*time.Second + s.grace)
	return &t
}

// expireBlobs ties the blobs of a disappearing message to it, once it is
// stored. A retried send (a duplicate) ties them again, in case the first
// attempt stopped before.
func (s *Service) expireBlobs(ctx context.Context, sender store.DeviceID, req *proto.Send, blobs []store.BlobID, expires *time.Time) error {
	if len(blobs) == 0 {
		return nil
	}
	return s.store.ExpireBlobs(ctx, sender, req.ClientMsgID, blobs, *expires)
}
