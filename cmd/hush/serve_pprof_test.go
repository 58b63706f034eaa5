package main

import (
	"slices"
	"testing"
)

func TestPprofFlag(t *testing.T) {
	for _, c := range []struct {
		args, rest []string
		env, addr  string
	}{
		{args: []string{"--addr", "x"}, rest: []string{"--addr", "x"}},
		{args: []string{"--pprof", "127.0.0.1:6060", "--addr", "x"}, rest: []string{"--addr", "x"}, addr: "127.0.0.1:6060"},
		{args: []string{"-pprof=127.0.0.1:1", "--store", "s"}, rest: []string{"--store", "s"}, addr: "127.0.0.1:1"},
		{args: []string{"--data", "d"}, env: "127.0.0.1:2", rest: []string{"--data", "d"}, addr: "127.0.0.1:2"},
		{args: []string{"--pprof", "127.0.0.1:3"}, env: "127.0.0.1:2", addr: "127.0.0.1:3"},
		{args: []string{"--", "--pprof", "a"}, rest: []string{"--", "--pprof", "a"}},
	} {
		addr, rest, err := pprofFlag(c.args, c.env)
		if err != nil || addr != c.addr || !slices.Equal(rest, c.rest) {
			t.Errorf("pprofFlag(%q, %q) = %q, %q, %v; want %q, %q", c.args, c.env, addr, rest, err, c.addr, c.rest)
		}
	}
	if _, _, err := pprofFlag([]string{"--pprof"}, ""); err == nil {
		t.Error("--pprof without a value accepted")
	}
	if _, err := servePprof("0.0.0.0:0"); err == nil {
		t.Error("non-loopback profiler address accepted")
	}
	stop, err := servePprof("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop()
}
