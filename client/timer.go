package client

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hush-chat/hush/mls"
	"github.com/hush-chat/hush/proto"
)

// A conversation's disappearing-message timer is MLS group state, not a
// preference of one device: it lives in the group context, in the
// [ExtensionTimer] extension, and only a commit (a GroupContextExtensions
// proposal, see [Client.SetTimer]) changes it. Every member's device
// therefore agrees on it, a forged or stale change is refused as any bad
// commit is, and a commit that sets a value out of range is refused before
// it is merged. Any member may change it; each device reports the change
// as an [EventTimer].
//
// Each text or attachment message carries, inside the encryption, the
// timer in force on the sending device when it was sent (Content.Timer), and
// keeps it whatever the conversation's timer becomes. See expiry.go for
// when a message's timer starts and how it is deleted.

// ExtensionTimer is the group context extension that holds a
// conversation's timer, a Hush private-use extension type (RFC 9420
// §17.3). Its data is the timer in seconds, a big-endian uint32; 0, or no
// extension, is off. Every Hush client lists the type in its
// capabilities, and the groups it creates require it
// (required_capabilities), so that a client that would keep the messages
// cannot join them.
const ExtensionTimer mls.ExtensionType = 0xF0A1

// The timers a conversation may have, besides off.
const (
	MinTimer = proto.MinTimer
	MaxTimer = proto.MaxTimer
)

// TimerPresets are the timers a UI offers; any other whole number of
// seconds from MinTimer to MaxTimer is allowed too.
var TimerPresets = []time.Duration{
	5 * time.Second, 30 * time.Second, time.Minute, 5 * time.Minute,
	time.Hour, 8 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 90 * 24 * time.Hour,
}

// ErrTimer is returned for a timer out of range, and wraps the errors of
// [ParseTimer].
var ErrTimer = errors.New("client: invalid disappearing-message timer")

// CheckTimer returns nil for 0 (off) and for a whole number of seconds
// from MinTimer to MaxTimer, and an error wrapping ErrTimer otherwise.
func CheckTimer(d time.Duration) error {
	switch {
	case d == 0:
		return nil
	case d < 0:
		return fmt.Errorf("%w: %s is negative", ErrTimer, d)
	case d%time.Second != 0:
		return fmt.Errorf("%w: %s is not a whole number of seconds", ErrTimer, d)
	case d < MinTimer || d > MaxTimer:
		return fmt.Errorf("%w: %s is not from %s to %s", ErrTimer, FormatTimer(d), FormatTimer(MinTimer), FormatTimer(MaxTimer))
	}
	return nil
}

// ParseTimer parses a timer as a user types it: "off", or a duration such
// as "30s", "5m", "1h30m" (time.ParseDuration), or "7d" and "1d12h" with
// days. The result is checked with CheckTimer; a zero duration is an
// error, so that "off" is always said in words.
func ParseTimer(s string) (time.Duration, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "off" {
		return 0, nil
	}
	var d time.Duration
	rest := s
	if days, after, ok := strings.Cut(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("%w: %q is not a duration such as 30s, 5m, 8h or 7d", ErrTimer, s)
		}
		d, rest = time.Duration(n)*24*time.Hour, after
	}
	if rest != "" {
		r, err := time.ParseDuration(rest)
		if err != nil || r < 0 && rest != s {
			return 0, fmt.Errorf("%w: %q is not a duration such as 30s, 5m, 8h or 7d", ErrTimer, s)
		}
		d += r
	}
	if d == 0 {
		return 0, fmt.Errorf("%w: %q is no time at all (say off to turn disappearing messages off)", ErrTimer, s)
	}
	return d, CheckTimer(d)
}

// FormatTimer describes a timer for people: "off", "30 seconds",
// "1 hour 30 minutes", "7 days". A duration that no timer can have
// (negative, or with a fraction of a second) is written as Go does.
func FormatTimer(d time.Duration) string {
	switch {
	case d == 0:
		return "off"
	case d < 0 || d%time.Second != 0:
		return d.String()
	}
	var parts []string
	for _, u := range []struct {
		name string
		d    time.Duration
	}{{"day", 24 * time.Hour}, {"hour", time.Hour}, {"minute", time.Minute}, {"second", time.Second}} {
		n := d / u.d
		switch {
		case n == 1:
			parts = append(parts, "1 "+u.name)
		case n > 1:
			parts = append(parts, strconv.FormatInt(int64(n), 10)+" "+u.name+"s")
		}
		d -= n * u.d
	}
	return strings.Join(parts, " ")
}

// timerExtension encodes the ExtensionTimer extension.
func timerExtension(d time.Duration) mls.Extension {
	return mls.Extension{Type: ExtensionTimer, Data: binary.BigEndian.AppendUint32(nil, uint32(d/time.Second))}
}

// timerOf reads the timer of a group context's extensions, and fails for
// a malformed or out-of-range value.
func timerOf(exts mls.Extensions) (time.Duration, error) {
	data, ok := exts.Find(ExtensionTimer)
	if !ok {
		return 0, nil
	}
	if len(data) != 4 {
		return 0, fmt.Errorf("%w: malformed extension", ErrTimer)
	}
	d := time.Duration(binary.BigEndian.Uint32(data)) * time.Second
	return d, CheckTimer(d)
}

// groupExtensions are the group context extensions of a new group: every
// member must support ExtensionTimer.
func groupExtensions() mls.Extensions {
	return mls.Extensions{(&mls.RequiredCapabilities{Extensions: []mls.ExtensionType{ExtensionTimer}}).Extension()}
}

// withTimer returns exts with the timer set to d.
func withTimer(exts mls.Extensions, d time.Duration) mls.Extensions {
	out := make(mls.Extensions, 0, len(exts)+1)
	for _, e := range exts {
		if e.Type != ExtensionTimer {
			out = append(out, e)
		}
	}
	return append(out, timerExtension(d))
}

// SetTimer sets the conversation's disappearing-message timer, for every
// member: d is a whole number of seconds from MinTimer to MaxTimer, or 0
// to turn it off; anything else is an error wrapping ErrTimer, and
// changes nothing. Messages sent before keep the timer they were sent
// with. Setting the timer in force does nothing.
func (c *Client) SetTimer(ctx context.Context, conv string, d time.Duration) error {
	if err := CheckTimer(d); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var cv *Conversation
	err := c.db.view(ctx, func(tx *tx) (err error) {
		cv, err = tx.conv(conv)
		return err
	})
	if err != nil || cv.Timer == d {
		return err
	}
	if err := c.flushOutbox(ctx); err != nil {
		return err
	}
	return c.commitChange(ctx, conv, func(_ *tx, g *mls.Group) (*commitPlan, error) {
		return &commitPlan{opts: mls.CommitOptions{Extensions: withTimer(g.Extensions(), d)}}, nil
	})
}

// noteTimer records the conversation's timer after a commit, or a join,
// and reports a change made by user ("" when this device joined).
func (tx *tx) noteTimer(cv *Conversation, d time.Duration, user string, events *[]Event) error {
	if cv.Timer == d {
		return nil
	}
	cv.Timer = d
	text := "disappearing messages: " + FormatTimer(d)
	switch {
	case user != "" && d == 0:
		text = user + " turned disappearing messages off"
	case user != "":
		text = user + " set disappearing messages to " + FormatTimer(d)
	}
	*events = append(*events, Event{Type: EventTimer, Conversation: cv.ID, User: user, Text: text})
	return tx.putConv(cv)
}
