package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hush-chat/hush/client"
	"github.com/hush-chat/hush/client/call"
	"github.com/hush-chat/hush/client/profile"
)

func init() {
	commands["call"] = command{"place or join a conversation's call: publish media files, record the others", runCall}
}

// A running `hush call` and `hush call --hangup` meet through two files
// in the profile's directory:
//
//   - call.pid, written by the running call: its process id. A second
//     `hush call` on the profile refuses to start while that process lives;
//     a call.pid whose process is gone is stale and is removed.
//   - call.hangup, created by `hush call --hangup`: the running call checks
//     for it every callPollInterval, removes it and hangs up. --hangup then
//     waits for call.pid to go.
//
// Files rather than a socket: they need no path-length limit, survive
// a crash as plain stale files, and work the same on every platform.
const (
	callPIDFile      = "call.pid"
	callHangupFile   = "call.hangup"
	callPollInterval = 100 * time.Millisecond
)

func runCall(ctx context.Context, stdout, stderr io.Writer, args []string) error {
	c := newClientCmd("call", "call CONVERSATION [--audio FILE.ogg] [--video FILE.ivf] [--record DIR] [--duration D] | call --hangup | call CONVERSATION --decline",
		"Places a call in the conversation, or joins the one going on: publishes an Ogg Opus file as audio and an IVF (VP8) file as video, each once in real time, "+
			"and records every other participant's audio and video into DIR/DEVICE.ogg and DIR/DEVICE.ivf. It stays in the call after the files end, until "+
			"--duration passes, `hush call --hangup` is run on the same profile, the call is interrupted (Ctrl-C), or the server ends it.", stdout, stderr)
	audio := c.fs.String("audio", "", "publish this Ogg Opus `FILE` as the call's audio")
	video := c.fs.String("video", "", "publish this IVF (VP8) `FILE` as the call's video")
	record := c.fs.String("record", "", "record the other participants into `DIR`")
	duration := c.fs.Duration("duration", 0, "hang up after this long (default: stay until hung up)")
	hangup := c.fs.Bool("hangup", false, "end this profile's participation in its call (a running `hush call` hangs up)")
	decline := c.fs.Bool("decline", false, "decline the conversation's call: tell its members you will not join")
	pos, err := c.parse(args, 0, 1)
	if err != nil {
		return err
	}
	dir, err := profile.Dir(c.profile)
	if err != nil {
		return err
	}
	if *hangup {
		return c.hangup(ctx, dir)
	}
	if len(pos) != 1 {
		c.fs.Usage()
		return errUsage
	}
	if *decline {
		return c.withSynced(ctx, func(cl *client.Client) error {
			cv, err := findConversation(ctx, cl, pos[0], false)
			if err != nil {
				return err
			}
			st, ok, err := cl.CurrentCall(ctx, cv.ID)
			if err != nil {
				return err
			}
			if !ok {
				return errors.New("no call is going on in " + cv.Title())
			}
			if err := cl.SendCallSignal(ctx, cv.ID, st.ID, client.CallDecline); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "declined call %s in %s\n", shortID(st.ID), cv.Title())
			return nil
		})
	}
	if *record != "" {
		if err := os.MkdirAll(*record, 0o700); err != nil {
			return err
		}
	}
	var audioFile, videoFile io.Reader
	for _, f := range []struct {
		path string
		r    *io.Reader
	}{{*audio, &audioFile}, {*video, &videoFile}} {
		if f.path == "" {
			continue
		}
		fh, err := os.Open(f.path)
		if err != nil {
			return err
		}
		defer fh.Close()
		*f.r = fh
	}
	release, err := claimCall(dir)
	if err != nil {
		return err
	}
	defer release()
	return c.call(ctx, dir, pos[0], audioFile, videoFile, *record, *duration)
}

// claimCall writes call.pid, refusing if another live process holds it.
func claimCall(dir string) (release func(), err error) {
	path := filepath.Join(dir, callPIDFile)
	if pid, ok := livePID(path); ok {
		return nil, fmt.Errorf("a call is already running on this profile (process %d): hang it up first with `hush call --hangup`", pid)
	}
	os.Remove(filepath.Join(dir, callHangupFile)) // a request for a call that is gone
	if err := os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return nil, err
	}
	return func() { os.Remove(path) }, nil
}

// livePID reads a pid file and reports whether its process lives.
func livePID(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	p, err := os.FindProcess(pid)
	if err != nil || p.Signal(syscall.Signal(0)) != nil {
		return 0, false
	}
	return pid, true
}

// hangup asks the profile's running call to hang up and waits for it;
// with no call running, it tells the members this device left the
// conversation's call if the last sync still lists it there.
func (c *clientCmd) hangup(ctx context.Context, dir string) error {
	pidPath := filepath.Join(dir, callPIDFile)
	if _, ok := livePID(pidPath); ok {
		if err := os.WriteFile(filepath.Join(dir, callHangupFile), nil, 0o600); err != nil {
			return err
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, ok := livePID(pidPath); !ok {
				fmt.Fprintln(c.stdout, "hung up")
				return nil
			}
			if time.Now().After(deadline) {
				return errors.New("the running call did not hang up within 10 seconds")
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(callPollInterval):
			}
		}
	}
	os.Remove(pidPath) // stale, if there
	return c.withSynced(ctx, func(cl *client.Client) error {
		me, err := cl.DeviceID()
		if err != nil {
			return err
		}
		convs, err := cl.Conversations(ctx)
		if err != nil {
			return err
		}
		left := 0
		for _, cv := range convs {
			st, ok, err := cl.CurrentCall(ctx, cv.ID)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if _, in := st.Devices[me]; in {
				if err := cl.SendCallSignal(ctx, cv.ID, st.ID, client.CallLeave); err != nil {
					return err
				}
				left++
			}
		}
		if left == 0 {
			return errors.New("no call is running on this profile")
		}
		fmt.Fprintln(c.stdout, "hung up")
		return nil
	})
}

func (c *clientCmd) call(ctx context.Context, dir, ref string, audio, video io.Reader, record string, duration time.Duration) error {
	events := make(chan client.Event, 256)
	cl, err := c.openAccount(ctx, func(e client.Event) {
		select {
		case events <- e:
		default:
		}
	})
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.Sync(ctx); err != nil {
		return err
	}
	cv, err := findConversation(ctx, cl, ref, false)
	if err != nil {
		return err
	}
	acct, err := cl.Account()
	if err != nil {
		return err
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runErr := make(chan error, 1)
	go func() { runErr <- cl.Run(runCtx) }()
	for !cl.Online() {
		select {
		case err := <-runErr:
			return fmt.Errorf("connecting to the server: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}

	var recordings sync.WaitGroup
	s, err := call.Start(ctx, cl, cv.ID, call.SessionOptions{
		LoopbackOnly: loopbackServer(c.server, acct.Server),
		OnRemote: func(r *call.Remote) {
			if record == "" {
				go drain(r)
				return
			}
			recordings.Go(func() {
				name, err := call.Record(record, r)
				if err != nil {
					fmt.Fprintf(c.stderr, "recording %s's %s: %v\n", r.Device, r.Kind, err)
				}
				if name != "" {
					fmt.Fprintf(c.stdout, "recorded %s\n", name)
				}
			})
		},
		// A dropped connection or a failed PeerConnection: the session
		// joins the call again by itself for up to 30 seconds.
		OnReconnecting: func(reason string) { fmt.Fprintf(c.stdout, "reconnecting… (%s)\n", reason) },
		OnReconnected:  func() { fmt.Fprintln(c.stdout, "reconnected") },
	})
	if err != nil {
		return err
	}
	verb := "joined"
	if s.Started {
		verb = "started"
	}
	fmt.Fprintf(c.stdout, "%s call %s in %s\n", verb, shortID(s.ID()), cv.Title())
	hangup := func() {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := s.Leave(lctx); err != nil {
			fmt.Fprintf(c.stderr, "hanging up: %v\n", err)
		}
		recordings.Wait()
	}

	select {
	case <-s.Connected():
		fmt.Fprintln(c.stdout, "connected")
	case <-s.Done():
		hangup()
		return fmt.Errorf("the call ended: %s", s.Reason())
	case <-time.After(30 * time.Second):
		hangup()
		return errors.New("the call did not connect within 30 seconds")
	case <-ctx.Done():
		hangup()
		return nil
	}
	published := make(chan error, 1)
	if audio != nil || video != nil {
		go func() { published <- call.Publish(ctx, s.Call, audio, video) }()
	}
	var until <-chan time.Time
	if duration > 0 {
		until = time.After(duration)
	}
	poll := time.NewTicker(callPollInterval)
	defer poll.Stop()
	hangupPath := filepath.Join(dir, callHangupFile)
	for {
		select {
		case <-ctx.Done():
			hangup()
			return nil
		case <-until:
			hangup()
			return nil
		case <-poll.C:
			if _, err := os.Stat(hangupPath); err == nil {
				os.Remove(hangupPath)
				hangup()
				return nil
			}
		case err := <-published:
			if err != nil && ctx.Err() == nil && !errors.Is(err, call.ErrEnded) {
				fmt.Fprintf(c.stderr, "publishing: %v\n", err)
			} else if err == nil {
				fmt.Fprintln(c.stdout, "media files ended; staying in the call")
			}
		case <-s.Done():
			recordings.Wait()
			fmt.Fprintf(c.stdout, "call ended: %s\n", s.Reason())
			s.Leave(context.WithoutCancel(ctx))
			return nil
		case err := <-runErr:
			hangup()
			return fmt.Errorf("connection to the server: %w", err)
		case e := <-events:
			c.printCallEvent(e, cv.ID, acct.DeviceID, s)
		}
	}
}

// printCallEvent shows who joins, declines and leaves, and rekeys.
func (c *clientCmd) printCallEvent(e client.Event, conv, me string, s *call.Session) {
	if e.Conversation != conv {
		return
	}
	switch e.Type {
	case client.EventCall:
		if e.Device == me || e.CallID != s.ID() {
			return
		}
		what := map[string]string{
			string(client.CallInvite): "started the call", string(client.CallJoin): "joined",
			string(client.CallDecline): "declined", string(client.CallLeave): "left",
		}[e.Text]
		fmt.Fprintf(c.stdout, "%s (device %s) %s\n", e.User, shortID(e.Device), what)
	case client.EventEpoch:
		fmt.Fprintf(c.stdout, "keys now at epoch %d\n", s.Keys().Epoch())
	case client.EventMemberAdded:
		fmt.Fprintf(c.stdout, "%s was added to the conversation\n", e.User)
	case client.EventMemberRemoved:
		fmt.Fprintf(c.stdout, "%s was removed from the conversation\n", e.User)
	}
}

// drain reads a remote stream that is not recorded, so that its
// decryption statistics still count.
func drain(r *call.Remote) {
	for {
		if _, err := r.ReadFrame(); err != nil {
			return
		}
	}
}

// loopbackServer reports whether the server is on this machine's
// loopback interface, where ICE must use loopback addresses too.
func loopbackServer(urls ...string) bool {
	for _, u := range urls {
		if u == "" {
			continue
		}
		pu, err := url.Parse(u)
		if err != nil {
			return false
		}
		host := pu.Hostname()
		if host == "localhost" {
			return true
		}
		ip := net.ParseIP(host)
		return ip != nil && ip.IsLoopback()
	}
	return false
}
