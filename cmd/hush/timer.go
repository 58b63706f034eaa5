package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hush-chat/hush/client"
)

// The timer subcommand, and how disappearing messages are shown.

func init() {
	commands["timer"] = command{"set a conversation's disappearing-message timer", runTimer}
}

func runTimer(ctx context.Context, stdout, stderr io.Writer, args []string) error {
	presets := make([]string, len(client.TimerPresets))
	for i, d := range client.TimerPresets {
		presets[i] = shortDuration(d)
	}
	c := newClientCmd("timer", "timer [flags] CONVERSATION [off|DURATION]",
		"Sets the disappearing-message timer of CONVERSATION for everyone in it: each message sent from\n"+
			"then on disappears from every device DURATION after it was sent (on the sender's devices) or\n"+
			"first shown (on the others'), and from the server as soon as every device has it. Messages\n"+
			"sent before keep their own timer. DURATION is from 5s to 90d, such as 30s, 5m, 1h30m or 7d;\n"+
			"presets: "+strings.Join(presets, " ")+". Without DURATION, shows the timer.", stdout, stderr)
	pos, err := c.parse(args, 1, 2)
	if err != nil {
		return err
	}
	var d time.Duration
	if len(pos) == 2 {
		// A bad timer is refused before anything is opened or sent.
		if d, err = client.ParseTimer(pos[1]); err != nil {
			return err
		}
	}
	cl, err := c.syncedClient(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	cv, err := findConversation(ctx, cl, pos[0], false)
	if err != nil {
		return err
	}
	if len(pos) == 2 {
		if err := cl.SetTimer(ctx, cv.ID, d); err != nil {
			return err
		}
		cv.Timer = d
	}
	if c.json {
		return c.printJSON(map[string]any{"conversation": cv.ID, "timer_seconds": int64(cv.Timer / time.Second)})
	}
	if cv.Timer == 0 {
		fmt.Fprintf(stdout, "%s: disappearing messages off\n", cv.Title())
	} else {
		fmt.Fprintf(stdout, "%s: messages disappear after %s\n", cv.Title(), client.FormatTimer(cv.Timer))
	}
	return nil
}

// shortDuration writes a timer as the presets are typed: 30s, 5m, 8h,
// 24h, 7d.
func shortDuration(d time.Duration) string {
	switch {
	case d >= 48*time.Hour && d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// remaining writes the time a disappearing message has left, to the
// second and in its two largest units: 4s, 59m 12s, 23h 5m, 6d 23h.
func remaining(d time.Duration) string {
	d = max(d, 0).Round(time.Second)
	units := []struct {
		suffix string
		d      time.Duration
	}{{"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}}
	var parts []string
	for _, u := range units {
		if n := d / u.d; n > 0 || len(parts) > 0 || u.d == time.Second {
			parts = append(parts, fmt.Sprintf("%d%s", n, u.suffix))
			d -= n * u.d
		}
		if len(parts) == 2 {
			break
		}
	}
	return strings.Join(parts, " ")
}

// disappearing describes a disappearing message's timer for its line, or
// "" for a message that stays.
func disappearing(m *client.Message, now time.Time) string {
	switch {
	case m.Timer == 0:
		return ""
	case m.Expires.IsZero():
		return "disappears " + client.FormatTimer(m.Timer) + " after it is shown"
	}
	return "disappears in " + remaining(m.Expires.Sub(now))
}
