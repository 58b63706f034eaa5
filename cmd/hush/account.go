package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hush-chat/hush/client"
)

// Account subcommands: register, whoami, devices, link.

func init() {
	commands["register"] = command{"create an account and this device's profile", runRegister}
	commands["whoami"] = command{"show this device's account", runWhoami}
	commands["devices"] = command{"list the account's devices", runDevices}
	commands["link"] = command{"link another device to the account (or, with --code, this one)", runLink}
}

func runRegister(ctx context.Context, stdout, stderr io.Writer, args []string) error {
	c := newClientCmd("register", "register [flags] USERNAME",
		"Creates an account on the server (--server) and this device's profile: a new identity key,\n"+
			"a device key certified by it, and KeyPackages so that others can start chats with you.\n"+
			"Protect the profile with a passphrase by giving one (--passphrase-file or HUSH_PASSPHRASE);\n"+
			"otherwise a random key is kept in a key file readable only by you.", stdout, stderr)
	pos, err := c.parse(args, 1, 1)
	if err != nil {
		return err
	}
	cl, dir, err := c.open(ctx, true, nil)
	if err != nil {
		return err
	}
	defer cl.Close()
	a, err := cl.Register(ctx, c.serverURL(), pos[0])
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(accountJSON(a, dir))
	}
	fmt.Fprintf(stdout, "Registered %s on %s.\nDevice %s; profile %q in %s.\n", a.Username, a.Server, a.DeviceID, c.profile, dir)
	return nil
}

func accountJSON(a *client.Account, dir string) map[string]any {
	return map[string]any{"username": a.Username, "user_id": a.UserID, "device_id": a.DeviceID, "server": a.Server,
		"identity_key": hex.EncodeToString(a.IdentityKey), "profile_dir": dir}
}

func runWhoami(ctx context.Context, stdout, stderr io.Writer, args []string) error {
	c := newClientCmd("whoami", "whoami [flags]", "Shows this device's account.", stdout, stderr)
	if _, err := c.parse(args, 0, 0); err != nil {
		return err
	}
	cl, dir, err := c.open(ctx, false, nil)
	if err != nil {
		return err
	}
	defer cl.Close()
	a, err := cl.Account()
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(accountJSON(a, dir))
	}
	fmt.Fprintf(stdout, "%s on %s\nuser id:      %s\ndevice id:    %s\nidentity key: %x\nprofile:      %s (%s)\n",
		a.Username, a.Server, a.UserID, a.DeviceID, a.IdentityKey, c.profile, dir)
	return nil
}

func runDevices(ctx context.Context, stdout, stderr io.Writer, args []string) error {
	c := newClientCmd("devices", "devices [flags]",
		"Lists the account's devices, each checked against your identity key.", stdout, stderr)
	if _, err := c.parse(args, 0, 0); err != nil {
		return err
	}
	cl, err := c.openAccount(ctx, nil)
	if err != nil {
		return err
	}
	defer cl.Close()
	devs, err := cl.Devices(ctx)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(devs)
	}
	for _, d := range devs {
		mark := " "
		if d.Current {
			mark = "*"
		}
		status := "certified"
		if !d.Verified {
			status = "NOT CERTIFIED by your identity key"
		}
		fmt.Fprintf(stdout, "%s %s  since %s  %s\n", mark, d.ID, d.Issued.Local().Format(time.DateTime), status)
	}
	return nil
}

func runLink(ctx context.Context, stdout, stderr io.Writer, args []string) error {
	c := newClientCmd("link", "link [flags]  |  hush link --code CODE --server URL [flags]",
		"On a device with an account: shows a one-time code and waits for the new device, then\n"+
			"certifies it and adds it to every conversation.\n"+
			"On the new device: --code CODE (and --server URL) links this profile to that account.", stdout, stderr)
	code := c.fs.String("code", "", "the `CODE` shown by `hush link` on the existing device")
	if _, err := c.parse(args, 0, 0); err != nil {
		return err
	}
	if *code != "" {
		cl, dir, err := c.open(ctx, true, nil)
		if err != nil {
			return err
		}
		defer cl.Close()
		if _, err := cl.Account(); err == nil {
			return errors.New("this profile already has an account; use --profile to pick another")
		}
		if !c.json {
			fmt.Fprintln(stderr, "Waiting for the other device...")
		}
		a, err := cl.LinkNew(ctx, c.serverURL(), *code)
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(accountJSON(a, dir))
		}
		fmt.Fprintf(stdout, "Linked as %s (device %s). Conversations arrive as the other device adds this one; run: hush read\n", a.Username, a.DeviceID)
		return nil
	}
	cl, err := c.openAccount(ctx, nil)
	if err != nil {
		return err
	}
	defer cl.Close()
	a, err := cl.Account()
	if err != nil {
		return err
	}
	offer, err := cl.Link(ctx)
	if err != nil {
		return err
	}
	if c.json {
		if err := c.printJSON(map[string]any{"code": offer.Code, "expires": offer.Expires}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "On the new device, run:\n\n  hush link --server %s --code %s\n\nThe code is valid until %s. Keep it to yourself: it hands over your account.\n",
			a.Server, offer.Code, offer.Expires.Local().Format(time.TimeOnly))
	}
	dev, err := offer.Complete(ctx)
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(map[string]any{"linked_device": dev})
	}
	fmt.Fprintf(stdout, "Linked device %s and added it to your conversations.\n", dev)
	return nil
}
