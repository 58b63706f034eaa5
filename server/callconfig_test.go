package server

import (
	"flag"
	"slices"
	"testing"
)

// TestCallSettings reads the call settings from flags and environment
// variables, and refuses bad port ranges.
func TestCallSettings(t *testing.T) {
	env := map[string]string{"HUSH_CALL_TURN_USERNAME": "hush", "HUSH_CALL_TURN_CREDENTIAL": "s3cret"}
	o, err := Configure(flag.NewFlagSet("serve", flag.ContinueOnError), []string{
		"--call-public-ip", "203.0.113.7, 198.51.100.1", "--call-udp-ports", "50000-50100",
		"--call-ice-servers", "stun:turn.example.org:3478,turn:turn.example.org:3478",
		"--call-max-participants", "8", "--public-url", "https://node-1.example.org",
	}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	c := o.Calls
	if c.Disabled || !slices.Equal(c.PublicIPs, []string{"203.0.113.7", "198.51.100.1"}) || c.UDPPortMin != 50000 || c.UDPPortMax != 50100 ||
		len(c.ICEServers) != 2 || c.TURNUsername != "hush" || c.TURNCredential != "s3cret" || c.MaxParticipants != 8 || c.PublicURL != "https://node-1.example.org" {
		t.Fatalf("call options: %+v", c)
	}
	o, err = Configure(flag.NewFlagSet("serve", flag.ContinueOnError), []string{"--calls=false"}, func(string) string { return "" })
	if err != nil || !o.Calls.Disabled {
		t.Fatalf("--calls=false: %+v, %v", o.Calls, err)
	}
	for _, bad := range []string{"50000", "50100-50000", "0-10", "a-b", "1-70000"} {
		if _, err := Configure(flag.NewFlagSet("serve", flag.ContinueOnError), []string{"--call-udp-ports", bad}, func(string) string { return "" }); err == nil {
			t.Errorf("--call-udp-ports %s accepted", bad)
		}
	}
}

// TestCallsDisabled: a server with calls off has no SFU.
func TestCallsDisabled(t *testing.T) {
	s, err := New(t.Context(), Options{Addr: "127.0.0.1:0", DataDir: t.TempDir(), Calls: CallOptions{Disabled: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.ln.Close()
	defer s.store.Close()
	defer s.bus.Close()
	if s.Calls() != nil {
		t.Fatal("an SFU with calls disabled")
	}
}
