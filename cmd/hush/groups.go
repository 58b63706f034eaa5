package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/hush-chat/hush/client"
)

// Group subcommands: group create|add|remove, groups, members.

func init() {
	commands["group"] = command{"create a group, add or remove people", runGroup}
	commands["groups"] = command{"list your conversations", runGroups}
	commands["members"] = command{"list the devices in a conversation", runMembers}
}

func runGroup(ctx context.Context, stdout, stderr io.Writer, args []string) error {
	c := newClientCmd("group", "group [flags] create NAME USER...  |  add GROUP USER...  |  remove GROUP USER",
		"create: starts a group with the users (all their devices, and your other devices).\n"+
			"add: adds users to a group. remove: removes a user, with all their devices.\n"+
			"The group's name is end-to-end encrypted: the server never sees it.", stdout, stderr)
	pos, err := c.parse(args, 3, -1)
	if err != nil {
		return err
	}
	op := pos[0]
	if op != "create" && op != "add" && op != "remove" || op == "remove" && len(pos) != 3 {
		c.fs.Usage()
		return errUsage
	}
	return c.withSynced(ctx, func(cl *client.Client) error {
		if op == "create" {
			cv, err := cl.CreateGroup(ctx, pos[1], pos[2:]...)
			if err != nil {
				return err
			}
			return c.result(cv, "created %s (%s)\n", cv.Title(), shortID(cv.ID))
		}
		cv, err := findConversation(ctx, cl, pos[1], false)
		if err != nil {
			return err
		}
		if op == "add" {
			err = cl.AddMembers(ctx, cv.ID, pos[2:]...)
		} else {
			err = cl.RemoveMember(ctx, cv.ID, pos[2])
		}
		if err != nil {
			return err
		}
		return c.result(map[string]any{"conversation": cv.ID, op: pos[2:]},
			"%s: %s %v\n", cv.Title(), map[string]string{"add": "added", "remove": "removed"}[op], pos[2:])
	})
}

func runGroups(ctx context.Context, stdout, stderr io.Writer, args []string) error {
	c := newClientCmd("groups", "groups [flags]", "Lists your conversations, 1:1 chats and groups, most recent first.", stdout, stderr)
	return c.withSyncedClient(ctx, args, 0, 0, func(cl *client.Client, _ []string) error {
		convs, err := cl.Conversations(ctx)
		if err != nil {
			return err
		}
		return printList(c, convs, func(w io.Writer, cv *client.Conversation) {
			state := ""
			if !cv.Active {
				state = "  (not a member)"
			}
			if cv.Timer > 0 {
				state += "  (messages disappear after " + client.FormatTimer(cv.Timer) + ")"
			}
			fmt.Fprintf(w, "%s  %-6s  %-24s  last %s%s\n", shortID(cv.ID), cv.Kind, cv.Title(), cv.Last.Local().Format(time.DateTime), state)
		})
	})
}

func runMembers(ctx context.Context, stdout, stderr io.Writer, args []string) error {
	c := newClientCmd("members", "members [flags] CONVERSATION", "Lists the devices in a conversation and whether each is certified by its owner.", stdout, stderr)
	return c.withSyncedClient(ctx, args, 1, 1, func(cl *client.Client, pos []string) error {
		cv, err := findConversation(ctx, cl, pos[0], false)
		if err != nil {
			return err
		}
		ms, err := cl.Members(ctx, cv.ID)
		if err != nil {
			return err
		}
		return printList(c, ms, func(w io.Writer, m client.Member) {
			status := "certified"
			if !m.Verified {
				status = "NOT VERIFIED"
			}
			self := ""
			if m.Self {
				self = "  (this device)"
			}
			fmt.Fprintf(w, "%-20s %s  %s%s\n", m.User, m.Device, status, self)
		})
	})
}
