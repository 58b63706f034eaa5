package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/hush-chat/hush/client"
	"github.com/hush-chat/hush/client/profile"
)

// The client subcommands share these flags; each command's --help lists
// them with its own.

// defaultServer is where a new profile registers unless --server says
// otherwise; after registration the profile remembers its server.
const defaultServer = "http://127.0.0.1:8080"

// clientCmd is the parsed common flags of a client subcommand.
type clientCmd struct {
	fs             *flag.FlagSet
	stdout, stderr io.Writer
	profile        string
	server         string
	json           bool
	passphraseFile string
	verbose        bool
}

// newClientCmd makes the flag set of a client subcommand. usage is the
// line after "Usage: hush ", desc a sentence or two.
func newClientCmd(name, usage, desc string, stdout, stderr io.Writer) *clientCmd {
	c := &clientCmd{fs: flag.NewFlagSet(name, flag.ContinueOnError), stdout: stdout, stderr: stderr}
	c.fs.SetOutput(stderr)
	c.fs.StringVar(&c.profile, "profile", profile.DefaultName, "profile `NAME`: one device's state under $XDG_DATA_HOME/hush/NAME")
	c.fs.StringVar(&c.server, "server", "", "server `URL` (default "+defaultServer+"; remembered by the profile at registration)")
	c.fs.BoolVar(&c.json, "json", false, "print JSON for scripts instead of text")
	c.fs.StringVar(&c.passphraseFile, "passphrase-file", "", "read the profile's passphrase from `FILE` (or set HUSH_PASSPHRASE)")
	c.fs.BoolVar(&c.verbose, "v", false, "log diagnostics to stderr")
	c.fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: hush %s\n\n%s\n\nFlags:\n", usage, desc)
		c.fs.PrintDefaults()
	}
	return c
}

// parse parses flags placed anywhere among the arguments (a "--" ends
// the flags) and checks the number of positional arguments.
func (c *clientCmd) parse(args []string, minArgs, maxArgs int) ([]string, error) {
	var tail []string
	for i, a := range args {
		if a == "--" {
			args, tail = args[:i], args[i+1:]
			break
		}
	}
	var pos []string
	for {
		if err := c.fs.Parse(args); err != nil {
			return nil, err
		}
		args = c.fs.Args()
		if len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	pos = append(pos, tail...)
	if len(pos) < minArgs || maxArgs >= 0 && len(pos) > maxArgs {
		c.fs.Usage()
		return nil, errUsage
	}
	return pos, nil
}

// passphrase returns the passphrase from --passphrase-file or
// HUSH_PASSPHRASE, or nil.
func (c *clientCmd) passphrase() ([]byte, error) {
	if c.passphraseFile != "" {
		b, err := os.ReadFile(c.passphraseFile)
		if err != nil {
			return nil, err
		}
		return []byte(strings.TrimRight(string(b), "\r\n")), nil
	}
	if p := os.Getenv("HUSH_PASSPHRASE"); p != "" {
		return []byte(p), nil
	}
	return nil, nil
}

// open opens the profile. With create, a missing profile is created.
func (c *clientCmd) open(ctx context.Context, create bool, onEvent func(client.Event)) (*client.Client, string, error) {
	dir, err := profile.Dir(c.profile)
	if err != nil {
		return nil, "", err
	}
	pass, err := c.passphrase()
	if err != nil {
		return nil, "", err
	}
	logger := slog.New(slog.DiscardHandler)
	if c.verbose {
		logger = slog.New(slog.NewTextHandler(c.stderr, nil))
	}
	o := profile.Options{Passphrase: pass, Client: client.Options{Logger: logger, OnEvent: onEvent}}
	if c.server != "" {
		// An explicit --server overrides the one the profile remembers,
		// for a server that moved.
		o.Client.Transport = func(string) (client.Transport, error) { return client.NewHTTPTransport(c.server, nil) }
	}
	cl, err := profile.Open(ctx, dir, o)
	if errors.Is(err, profile.ErrNoProfile) && create {
		o.Create = true
		cl, err = profile.Open(ctx, dir, o)
	}
	if errors.Is(err, profile.ErrPassphrase) {
		err = fmt.Errorf("%w: give it with --passphrase-file or HUSH_PASSPHRASE", err)
	}
	return cl, dir, err
}

// openAccount opens the profile, which must hold an account.
func (c *clientCmd) openAccount(ctx context.Context, onEvent func(client.Event)) (*client.Client, error) {
	cl, _, err := c.open(ctx, false, onEvent)
	if err != nil {
		return nil, err
	}
	if _, err := cl.Account(); err != nil {
		cl.Close()
		return nil, err
	}
	return cl, nil
}

// syncedClient opens the profile's account and catches up with the
// server, so that a command acts on the conversations as they stand.
func (c *clientCmd) syncedClient(ctx context.Context) (*client.Client, error) {
	cl, err := c.openAccount(ctx, nil)
	if err != nil {
		return nil, err
	}
	if err := cl.Sync(ctx); err != nil {
		cl.Close()
		return nil, err
	}
	return cl, nil
}

// withSynced runs f with the synced client, then closes it.
func (c *clientCmd) withSynced(ctx context.Context, f func(cl *client.Client) error) error {
	cl, err := c.syncedClient(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	return f(cl)
}

// withSyncedClient parses the positional arguments (min to max of them; max
// -1 for any number), opens the synced client and runs f with both.
func (c *clientCmd) withSyncedClient(ctx context.Context, args []string, min, max int, f func(cl *client.Client, pos []string) error) error {
	pos, err := c.parse(args, min, max)
	if err != nil {
		return err
	}
	return c.withSynced(ctx, func(cl *client.Client) error { return f(cl, pos) })
}

// result prints a command's result: v as JSON with --json, otherwise the
// text format makes of args.
func (c *clientCmd) result(v any, format string, args ...any) error {
	if c.json {
		return c.printJSON(v)
	}
	fmt.Fprintf(c.stdout, format, args...)
	return nil
}

// printDone reports a message sent or changed: "VERB ID", or the
// message as JSON.
func (c *clientCmd) printDone(verb string, m *client.Message) error {
	return c.result(toJSON(m), "%s %s\n", verb, shortID(m.ID))
}

// printSent reports a message sent.
func (c *clientCmd) printSent(m *client.Message) error { return c.printDone("sent", m) }

// printList prints items as a JSON array with --json, otherwise a line
// (or a few) each with line.
func printList[T any](c *clientCmd, items []T, line func(w io.Writer, item T)) error {
	if c.json {
		return c.printJSON(items)
	}
	for _, it := range items {
		line(c.stdout, it)
	}
	return nil
}

// serverURL is --server or the default.
func (c *clientCmd) serverURL() string {
	if c.server != "" {
		return c.server
	}
	return defaultServer
}

// printJSON writes v as one line of JSON.
func (c *clientCmd) printJSON(v any) error {
	return json.NewEncoder(c.stdout).Encode(v)
}

// findConversation resolves a conversation argument: an id or prefix, a
// group name, or a user (the 1:1 chat, started if need be when start is
// set).
func findConversation(ctx context.Context, cl *client.Client, ref string, start bool) (*client.Conversation, error) {
	cv, err := cl.FindConversation(ctx, ref)
	if err == nil || !start || !errors.Is(err, client.ErrNotFound) {
		return cv, err
	}
	if _, uerr := client.NormalizeUsername(ref); uerr != nil {
		return nil, err
	}
	return cl.Direct(ctx, ref)
}

// messageJSON is a message as --json prints it. The attachment's key is
// left out: it stays on the device.
type messageJSON struct {
	ID           string            `json:"id"`
	Conversation string            `json:"conversation"`
	Seq          uint64            `json:"seq"`
	Sender       string            `json:"sender"`
	SenderDevice string            `json:"sender_device"`
	Time         time.Time         `json:"time"`
	Text         string            `json:"text,omitempty"`
	ReplyTo      string            `json:"reply_to,omitempty"`
	Attachment   *attachmentJSON   `json:"attachment,omitempty"`
	Reactions    []client.Reaction `json:"reactions,omitempty"`
	Edited       bool              `json:"edited,omitempty"`
	Deleted      bool              `json:"deleted,omitempty"`
	ReadBy       []string          `json:"read_by,omitempty"`
	Outgoing     bool              `json:"outgoing,omitempty"`
	Pending      bool              `json:"pending,omitempty"`
	Failed       bool              `json:"failed,omitempty"`
	TimerSeconds int64             `json:"timer_seconds,omitempty"`
	Expires      time.Time         `json:"expires,omitzero"`
}

type attachmentJSON struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type,omitempty"`
	Size        int64  `json:"size"`
}

func toJSON(m *client.Message) *messageJSON {
	j := &messageJSON{ID: m.ID, Conversation: m.Conversation, Seq: m.Seq, Sender: m.Sender, SenderDevice: m.SenderDevice,
		Time: m.Time, Text: m.Text, ReplyTo: m.ReplyTo, Reactions: m.Reactions, Edited: m.Edited, Deleted: m.Deleted,
		ReadBy: m.ReadBy, Outgoing: m.Outgoing, Pending: m.Pending, Failed: m.Failed,
		TimerSeconds: int64(m.Timer / time.Second), Expires: m.Expires}
	if a := m.Attachment; a != nil {
		j.Attachment = &attachmentJSON{Name: a.Name, ContentType: a.ContentType, Size: a.Size}
	}
	return j
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
