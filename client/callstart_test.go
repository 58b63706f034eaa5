package client_test

import (
	"context"
	"maps"
	"slices"
	"testing"

	"github.com/hush-chat/hush/client"
)

// callDevices returns the devices in conv's current call on d, sorted,
// and the call's id ("" with no call).
func callDevices(t *testing.T, d *device, conv string) (string, []string) {
	t.Helper()
	st, ok, err := d.CurrentCall(context.Background(), conv)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return "", nil
	}
	return st.ID, slices.Sorted(maps.Keys(st.Devices))
}

// TestStartCallGlare has alice and bob call at the same moment: bob has
// caught up and is about to send his invite when alice's invite reaches
// the server first. The earlier invite wins on every device: bob's
// StartCall joins alice's call instead of waiting alone in his, alice
// keeps hers when she reads bob's later invite, and carol, who reads
// both, has alice's call as the current one (the one a page rings for)
// with both in it.
func TestStartCallGlare(t *testing.T) {
	ctx := context.Background()
	srv := newFakeServer()
	alice, bob, carol := register(t, srv, "alice"), register(t, srv, "bob"), register(t, srv, "carol")
	cv, err := alice.CreateGroup(ctx, "call", "bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	mustSync(t, bob, carol)

	var aliceCall string
	var aliceStarted bool
	bob.SetBeforeCallInvite(func() {
		aliceCall, aliceStarted, err = alice.StartCall(ctx, cv.ID)
	})
	bobCall, bobStarted, berr := bob.StartCall(ctx, cv.ID)
	bob.SetBeforeCallInvite(nil)
	if err != nil || berr != nil {
		t.Fatalf("StartCall: alice %v, bob %v", err, berr)
	}
	if !aliceStarted || aliceCall == "" {
		t.Fatalf("alice: call %q, started %v; want a call she started", aliceCall, aliceStarted)
	}
	if bobCall != aliceCall || bobStarted {
		t.Fatalf("bob: call %q, started %v; want alice's call %q, joined", bobCall, bobStarted, aliceCall)
	}
	// bob did send an invite of his own (the glare happened): his device
	// reported it as he sent it; carol reads it as the losing one, and no
	// event rings for it there.
	var bobInvite string
	for _, e := range bob.eventsOf(client.EventCall) {
		if e.User == "bob" && e.Text == string(client.CallInvite) {
			bobInvite = e.CallID
		}
	}
	if bobInvite == "" || bobInvite == aliceCall {
		t.Fatalf("bob's own invite: %q (alice's call %q); the test did not make the two calls cross", bobInvite, aliceCall)
	}
	for _, e := range syncedCallEvents(t, carol) {
		if e.CallID == bobInvite {
			t.Errorf("carol: an event for bob's losing invite: %+v", e)
		}
	}
	aliceDev, _ := alice.DeviceID()
	bobDev, _ := bob.DeviceID()
	want := slices.Sorted(slices.Values([]string{aliceDev, bobDev}))
	mustSync(t, alice, bob, carol)
	for name, d := range map[string]*device{"alice": alice, "bob": bob, "carol": carol} {
		id, devs := callDevices(t, d, cv.ID)
		if id != aliceCall || !slices.Equal(devs, want) {
			t.Errorf("%s: current call %q with %v; want %q with alice and bob %v", name, id, devs, aliceCall, want)
		}
	}

	// A third member calling now joins the call going on: no new invite.
	carolCall, carolStarted, err := carol.StartCall(ctx, cv.ID)
	if err != nil || carolCall != aliceCall || carolStarted {
		t.Fatalf("carol: call %q, started %v, %v; want to join %q", carolCall, carolStarted, err, aliceCall)
	}
	// Once everybody has left, a new call starts afresh.
	for _, d := range []*device{alice, bob, carol} {
		if err := d.SendCallSignal(ctx, cv.ID, aliceCall, client.CallLeave); err != nil {
			t.Fatal(err)
		}
	}
	mustSync(t, alice, bob, carol)
	if id, _ := callDevices(t, carol, cv.ID); id != "" {
		t.Fatalf("carol: call %q still going on after everyone left", id)
	}
	next, started, err := bob.StartCall(ctx, cv.ID)
	if err != nil || !started || next == aliceCall {
		t.Fatalf("bob's new call: %q, started %v, %v", next, started, err)
	}
	mustSync(t, alice)
	if id, _ := callDevices(t, alice, cv.ID); id != next {
		t.Fatalf("alice: current call %q, want bob's new call %q", id, next)
	}
}

// syncedCallEvents syncs d and returns its call events.
func syncedCallEvents(t *testing.T, d *device) []client.Event {
	t.Helper()
	mustSync(t, d)
	return d.eventsOf(client.EventCall)
}
