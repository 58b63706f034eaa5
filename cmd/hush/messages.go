package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hush-chat/hush/client"
)

// Messaging subcommands: send, read, watch, reply, react, edit, delete.

func init() {
	commands["send"] = command{"send a message to a user or a group", runSend}
	commands["read"] = command{"fetch and show messages", runRead}
	commands["watch"] = command{"stream new messages and events as they arrive", runWatch}
	commands["reply"] = command{"reply to a message", runReply}
	commands["react"] = command{"react to a message with an emoji (again to take it back)", runReact}
	commands["edit"] = command{"edit a message you sent", runEdit}
	commands["delete"] = command{"delete a message you sent, for everyone", runDelete}
}

func shortID(id string) string { return id[:min(len(id), 8)] }

func runSend(ctx context.Context, stdout, stderr io.Writer, args []string) error {
	c := newClientCmd("send", "send [flags] TO TEXT...",
		"Sends TEXT to TO: a username (your 1:1 chat with them, started if need be), a group's name,\n"+
			"or a conversation id.", stdout, stderr)
	return c.withSyncedClient(ctx, args, 2, -1, func(cl *client.Client, pos []string) error {
		cv, err := findConversation(ctx, cl, pos[0], true)
		if err != nil {
			return err
		}
		m, err := cl.SendText(ctx, cv.ID, strings.Join(pos[1:], " "))
		if err != nil {
			return err
		}
		return c.printSent(m)
	})
}

func runRead(ctx context.Context, stdout, stderr io.Writer, args []string) error {
	c := newClientCmd("read", "read [flags] [CONVERSATION]",
		"Fetches what the server holds for this device and shows the conversation (a username, a\n"+
			"group name or a conversation id), or every conversation, in order: sender, time, replies,\n"+
			"reactions, edits and deletions. Messages shown are marked read (a receipt goes to the sender).", stdout, stderr)
	limit := c.fs.Int("n", 20, "show the last `N` messages of each conversation (0: all)")
	noReceipts := c.fs.Bool("no-receipts", false, "do not send read receipts")
	return c.withSyncedClient(ctx, args, 0, 1, func(cl *client.Client, pos []string) error {
		var convs []*client.Conversation
		var err error
		if len(pos) == 1 {
			cv, err := findConversation(ctx, cl, pos[0], false)
			if err != nil {
				return err
			}
			convs = []*client.Conversation{cv}
		} else if convs, err = cl.Conversations(ctx); err != nil {
			return err
		}
		a, err := cl.Account()
		if err != nil {
			return err
		}
		shown := 0
		for _, cv := range convs {
			msgs, err := cl.Messages(ctx, cv.ID)
			if err != nil {
				return err
			}
			if len(pos) == 0 && len(msgs) == 0 {
				continue
			}
			byID := map[string]*client.Message{}
			for _, m := range msgs {
				byID[m.ID] = m
			}
			if *limit > 0 && len(msgs) > *limit {
				msgs = msgs[len(msgs)-*limit:]
			}
			// Disappearing messages start their timers as they are shown.
			if err := cl.Shown(ctx, msgs...); err != nil {
				return err
			}
			if c.json {
				for _, m := range msgs {
					if err := c.printJSON(toJSON(m)); err != nil {
						return err
					}
				}
			} else {
				if shown > 0 {
					fmt.Fprintln(stdout)
				}
				fmt.Fprintf(stdout, "== %s  (%s)\n", cv.Title(), shortID(cv.ID))
				if !cv.Active {
					fmt.Fprintln(stdout, "   (this device is not in this conversation any more, or not yet)")
				}
				for _, m := range msgs {
					printMessage(stdout, m, byID, a.Username)
				}
			}
			shown++
			if !*noReceipts && cv.Active {
				if _, err := cl.MarkRead(ctx, cv.ID); err != nil {
					return err
				}
			}
		}
		if shown == 0 && !c.json {
			fmt.Fprintln(stdout, "No messages yet. Start a chat with: hush send USER TEXT")
		}
		return nil
	})
}

// printMessage writes one message as a line (or a few).
func printMessage(w io.Writer, m *client.Message, byID map[string]*client.Message, me string) {
	sender := m.Sender
	if m.Outgoing {
		sender = "you"
	}
	fmt.Fprintf(w, "[%s] %s %s: ", shortID(m.ID), m.Time.Local().Format("2006-01-02 15:04"), sender)
	switch {
	case m.Deleted:
		fmt.Fprint(w, "(message deleted)")
	case m.Attachment != nil:
		fmt.Fprintf(w, "[file %s, %s, %s]", m.Attachment.Name, humanSize(m.Attachment.Size), orDefault(m.Attachment.ContentType, "unknown type"))
		if m.Text != "" {
			fmt.Fprintf(w, " %s", m.Text)
		}
	default:
		fmt.Fprint(w, m.Text)
	}
	var marks []string
	if m.Edited && !m.Deleted {
		marks = append(marks, "edited")
	}
	if m.Pending {
		marks = append(marks, "not sent yet")
	}
	if m.Failed {
		marks = append(marks, "NOT DELIVERED")
	}
	if m.Outgoing && len(m.ReadBy) > 0 {
		marks = append(marks, "read by "+strings.Join(m.ReadBy, ", "))
	}
	if d := disappearing(m, time.Now()); d != "" {
		marks = append(marks, d)
	}
	if len(marks) > 0 {
		fmt.Fprintf(w, "  (%s)", strings.Join(marks, "; "))
	}
	fmt.Fprintln(w)
	if m.ReplyTo != "" {
		if q, ok := byID[m.ReplyTo]; ok {
			text := q.Text
			if q.Deleted {
				text = "(message deleted)"
			}
			fmt.Fprintf(w, "    ↪ replying to %s: %s\n", q.Sender, ellipsis(text, 60))
		} else {
			fmt.Fprintf(w, "    ↪ replying to a message that is not on this device (or has disappeared)\n")
		}
	}
	if len(m.Reactions) > 0 {
		var parts []string
		seen := map[string][]string{}
		var order []string
		for _, r := range m.Reactions {
			if _, ok := seen[r.Emoji]; !ok {
				order = append(order, r.Emoji)
			}
			user := r.User
			if user == me {
				user = "you"
			}
			seen[r.Emoji] = append(seen[r.Emoji], user)
		}
		for _, e := range order {
			parts = append(parts, e+" "+strings.Join(seen[e], ", "))
		}
		fmt.Fprintf(w, "    %s\n", strings.Join(parts, "   "))
	}
}

func ellipsis(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func runWatch(ctx context.Context, stdout, stderr io.Writer, args []string) error {
	c := newClientCmd("watch", "watch [flags]",
		"Stays connected and prints messages and events as they arrive, until interrupted.\n"+
			"Reconnects by itself and catches up on what arrived meanwhile.", stdout, stderr)
	if _, err := c.parse(args, 0, 0); err != nil {
		return err
	}
	var cl *client.Client
	events := make(chan client.Event, 256)
	cl, err := c.openAccount(ctx, func(e client.Event) {
		select {
		case events <- e:
		default: // a UI that cannot keep up drops events, never the client
		}
	})
	if err != nil {
		return err
	}
	defer cl.Close()
	a, err := cl.Account()
	if err != nil {
		return err
	}
	if !c.json {
		fmt.Fprintf(stderr, "Watching as %s; interrupt to stop.\n", a.Username)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- cl.Run(ctx) }()
	for {
		select {
		case e := <-events:
			if e.Type == client.EventMessage {
				// Shown now: a disappearing message's timer starts.
				if err := cl.Shown(ctx, e.Message); err != nil {
					return err
				}
			}
			if err := c.printEvent(ctx, cl, e, a.Username); err != nil {
				return err
			}
		case err := <-runErr:
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		}
	}
}

// printEvent shows one event of watch.
func (c *clientCmd) printEvent(ctx context.Context, cl *client.Client, e client.Event, me string) error {
	if c.json {
		j := map[string]any{"type": e.Type, "conversation": e.Conversation, "time": time.Now().UTC()}
		if e.Message != nil {
			j["message"] = toJSON(e.Message)
		}
		if e.User != "" {
			j["user"] = e.User
		}
		if e.Text != "" {
			j["text"] = e.Text
		}
		return c.printJSON(j)
	}
	title := shortID(e.Conversation)
	if cv, err := cl.FindConversation(ctx, e.Conversation); err == nil {
		title = cv.Title()
	}
	w := c.stdout
	switch e.Type {
	case client.EventMessage:
		fmt.Fprintf(w, "%s  ", title)
		printMessage(w, e.Message, map[string]*client.Message{}, me)
	case client.EventEdit:
		fmt.Fprintf(w, "%s  %s edited [%s]: %s\n", title, e.User, shortID(e.Message.ID), e.Message.Text)
	case client.EventDelete:
		fmt.Fprintf(w, "%s  %s deleted [%s]\n", title, e.User, shortID(e.Message.ID))
	case client.EventReaction:
		fmt.Fprintf(w, "%s  %s reacted to [%s]\n", title, e.User, shortID(e.Message.ID))
	case client.EventReceipt:
		fmt.Fprintf(w, "%s  %s read [%s]\n", title, e.User, shortID(e.Message.ID))
	case client.EventTyping:
		fmt.Fprintf(w, "%s  %s is typing…\n", title, e.User)
	case client.EventMemberAdded:
		fmt.Fprintf(w, "%s  %s joined\n", title, e.User)
	case client.EventMemberRemoved:
		fmt.Fprintf(w, "%s  %s left\n", title, e.User)
	case client.EventConversation:
		fmt.Fprintf(w, "%s  %s\n", title, orDefault(e.Text, "conversation updated"))
	case client.EventTimer:
		fmt.Fprintf(w, "%s  %s\n", title, e.Text)
	case client.EventCall:
		switch client.CallOp(e.Text) {
		case client.CallInvite:
			fmt.Fprintf(w, "%s  %s is calling: hush call %s to join, --decline to decline\n", title, e.User, shortID(e.Conversation))
		case client.CallJoin:
			fmt.Fprintf(w, "%s  %s joined the call\n", title, e.User)
		case client.CallDecline:
			fmt.Fprintf(w, "%s  %s declined the call\n", title, e.User)
		case client.CallLeave:
			fmt.Fprintf(w, "%s  %s left the call\n", title, e.User)
		}
	case client.EventExpired:
		fmt.Fprintf(w, "%s  [%s] disappeared\n", title, shortID(e.Message.ID))
	case client.EventIdentityChanged, client.EventWarning:
		fmt.Fprintf(w, "!! WARNING: %s\n", e.Text)
	}
	return nil
}

func runReply(ctx context.Context, stdout, stderr io.Writer, args []string) error {
	c := newClientCmd("reply", "reply [flags] MSGID TEXT...", "Replies to a message (its id or an unambiguous prefix, as `hush read` shows).", stdout, stderr)
	return c.withSyncedClient(ctx, args, 2, -1, func(cl *client.Client, pos []string) error {
		m, err := cl.Reply(ctx, pos[0], strings.Join(pos[1:], " "))
		if err != nil {
			return err
		}
		return c.printSent(m)
	})
}

func runReact(ctx context.Context, stdout, stderr io.Writer, args []string) error {
	c := newClientCmd("react", "react [flags] MSGID EMOJI", "Reacts to a message; the same emoji again takes the reaction back.", stdout, stderr)
	return c.withSyncedClient(ctx, args, 2, 2, func(cl *client.Client, pos []string) error {
		m, err := cl.React(ctx, pos[0], pos[1])
		if err != nil {
			return err
		}
		return c.printDone("reacted to", m)
	})
}

func runEdit(ctx context.Context, stdout, stderr io.Writer, args []string) error {
	c := newClientCmd("edit", "edit [flags] MSGID TEXT...", "Replaces the text of a message you sent, for everyone.", stdout, stderr)
	return c.withSyncedClient(ctx, args, 2, -1, func(cl *client.Client, pos []string) error {
		m, err := cl.Edit(ctx, pos[0], strings.Join(pos[1:], " "))
		if err != nil {
			return err
		}
		return c.printDone("edited", m)
	})
}

func runDelete(ctx context.Context, stdout, stderr io.Writer, args []string) error {
	c := newClientCmd("delete", "delete [flags] MSGID", "Deletes a message you sent, for everyone in the conversation.", stdout, stderr)
	return c.withSyncedClient(ctx, args, 1, 1, func(cl *client.Client, pos []string) error {
		if err := cl.Delete(ctx, pos[0]); err != nil {
			return err
		}
		return c.result(map[string]any{"deleted": pos[0]}, "deleted %s\n", pos[0])
	})
}
