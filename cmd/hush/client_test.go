package main

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"rsc.io/qr"
)

func TestParseInterleavedFlags(t *testing.T) {
	c := newClientCmd("send", "send TO TEXT", "", io.Discard, io.Discard)
	pos, err := c.parse([]string{"bob", "--json", "hello", "--profile", "work", "--", "--not-a-flag"}, 2, -1)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(pos, "|") != "bob|hello|--not-a-flag" || !c.json || c.profile != "work" {
		t.Errorf("pos = %q, json %v, profile %q", pos, c.json, c.profile)
	}
	c = newClientCmd("send", "send TO TEXT", "", io.Discard, io.Discard)
	if _, err := c.parse([]string{"bob"}, 2, -1); !errors.Is(err, errUsage) {
		t.Errorf("too few arguments: %v", err)
	}
}

func TestSafeName(t *testing.T) {
	for in, want := range map[string]string{
		"notes.txt":            "notes.txt",
		"../../etc/passwd":     "passwd",
		"..\\..\\boot.ini":     "boot.ini",
		".bashrc":              "bashrc",
		"":                     "attachment",
		"..":                   "attachment",
		"a\x1b[31mred\x07.txt": "a_[31mred_.txt",
	} {
		if got := safeName(in); got != want {
			t.Errorf("safeName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestWriteQR checks the half-block rendering: two module rows per line,
// a light quiet zone, dark modules blank.
func TestWriteQR(t *testing.T) {
	code, err := qr.Encode("123456789012345678901234567890123456789012345678901234567890", qr.M)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	writeQR(&b, code)
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if want := (code.Size + 4 + 1) / 2; len(lines) != want {
		t.Fatalf("%d lines, want %d", len(lines), want)
	}
	// Decode the rendering back into modules and compare.
	for y := range code.Size {
		row := []rune(lines[(y+2)/2])
		for x := range code.Size {
			r := row[x+2]
			var light bool
			if (y+2)%2 == 0 {
				light = r == '█' || r == '▀'
			} else {
				light = r == '█' || r == '▄'
			}
			if light == code.Black(x, y) {
				t.Fatalf("module (%d,%d) drawn wrong", x, y)
			}
		}
	}
	if strings.Trim(lines[0], "█") != "" {
		t.Error("the quiet zone is not light")
	}
}
