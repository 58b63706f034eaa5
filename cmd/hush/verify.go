package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"rsc.io/qr"

	"github.com/hush-chat/hush/client"
)

func init() {
	commands["verify"] = command{"compare safety numbers with a contact", runVerify}
}

func runVerify(ctx context.Context, stdout, stderr io.Writer, args []string) error {
	c := newClientCmd("verify", "verify [flags] USER",
		"Shows the safety number you share with USER, as digits and as a QR code. Compare it with\n"+
			"theirs in person or over a channel you trust; if it matches, run again with --confirm.\n"+
			"If USER's identity key changed, both numbers are shown: confirming accepts the new key.", stdout, stderr)
	confirm := c.fs.Bool("confirm", false, "mark USER as verified (accepting a changed key)")
	pos, err := c.parse(args, 1, 1)
	if err != nil {
		return err
	}
	cl, err := c.openAccount(ctx, nil)
	if err != nil {
		return err
	}
	defer cl.Close()
	ct, err := cl.Contact(ctx, pos[0])
	if err != nil {
		return err
	}
	if *confirm {
		if ct, err = cl.ConfirmVerified(ctx, pos[0]); err != nil {
			return err
		}
	}
	number := ct.SafetyNumber
	if ct.KeyChanged {
		number = ct.ChangedSafetyNumber
	}
	if c.json {
		return c.printJSON(map[string]any{"user": ct.Username, "safety_number": number, "verified": ct.Verified,
			"key_changed": ct.KeyChanged, "previous_safety_number": map[bool]string{true: ct.SafetyNumber}[ct.KeyChanged]})
	}
	if ct.KeyChanged {
		bar := strings.Repeat("!", 72)
		fmt.Fprintf(stdout, "%s\n!! %s's IDENTITY KEY HAS CHANGED.\n!! Either they reinstalled, or someone (the server?) is impersonating them.\n"+
			"!! Messages to conversations with them are refused until you compare the NEW\n!! safety number below with them and accept it: hush verify --confirm %s\n%s\n\n"+
			"Previous safety number:\n%s\n\nNEW safety number:\n",
			bar, ct.Username, ct.Username, bar, client.FormatSafetyNumber(ct.SafetyNumber))
	} else {
		fmt.Fprintf(stdout, "Safety number with %s:\n", ct.Username)
	}
	fmt.Fprintf(stdout, "%s\n\n", client.FormatSafetyNumber(number))
	code, err := qr.Encode(number, qr.M)
	if err != nil {
		return err
	}
	writeQR(stdout, code)
	switch {
	case ct.Verified && !ct.KeyChanged:
		fmt.Fprintf(stdout, "\n%s is verified.\n", ct.Username)
	default:
		fmt.Fprintf(stdout, "\nNot verified. If the numbers match, run: hush verify --confirm %s\n", ct.Username)
	}
	return nil
}

// writeQR draws a QR code with half blocks, two rows of modules per line
// of text, for a terminal with light text on a dark background: light
// modules are drawn, dark ones left blank, inside a light quiet zone.
func writeQR(w io.Writer, code *qr.Code) {
	const quiet = 2
	light := func(x, y int) bool {
		if x < 0 || y < 0 || x >= code.Size || y >= code.Size {
			return true
		}
		return !code.Black(x, y)
	}
	var sb strings.Builder
	for y := -quiet; y < code.Size+quiet; y += 2 {
		for x := -quiet; x < code.Size+quiet; x++ {
			top, bottom := light(x, y), light(x, y+1)
			if y+1 >= code.Size+quiet {
				bottom = false
			}
			switch {
			case top && bottom:
				sb.WriteString("█")
			case top:
				sb.WriteString("▀")
			case bottom:
				sb.WriteString("▄")
			default:
				sb.WriteString(" ")
			}
		}
		sb.WriteString("\n")
	}
	io.WriteString(w, sb.String())
}
