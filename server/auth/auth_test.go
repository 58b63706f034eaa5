package auth

import (
	"context"
	"errors"
	"testing"

	"github.com/hush-chat/hush/store"
)

type devices map[store.DeviceID]store.Device

var errOutage = errors.New("store down")

func (d devices) Device(_ context.Context, id store.DeviceID) (store.Device, error) {
	if id == (store.DeviceID{0xff}) {
		return store.Device{}, errOutage
	}
	dev, ok := d[id]
	if !ok {
		return store.Device{}, store.ErrNotFound
	}
	return dev, nil
}

func TestAuthenticate(t *testing.T) {
	secret := make([]byte, 32)
	secret[0] = 1
	hash, err := Hash(secret)
	if err != nil {
		t.Fatal(err)
	}
	live, revoked := store.NewDeviceID(), store.NewDeviceID()
	a := New(devices{
		live:    {ID: live, AuthHash: hash},
		revoked: {ID: revoked, AuthHash: hash, Revoked: true},
	})
	ctx := t.Context()
	if d, err := a.Header(ctx, "Bearer "+Token(live, secret)); err != nil || d.ID != live {
		t.Fatalf("good credentials: %v", err)
	}
	wrong := make([]byte, 32)
	for name, header := range map[string]string{
		"wrong secret":   "Bearer " + Token(live, wrong),
		"unknown device": "Bearer " + Token(store.NewDeviceID(), secret),
		"revoked":        "Bearer " + Token(revoked, secret),
		"no prefix":      Token(live, secret),
		"garbage":        "Bearer x.y",
		"empty":          "",
	} {
		if _, err := a.Header(ctx, header); err != ErrUnauthorized {
			t.Errorf("%s: %v, want ErrUnauthorized", name, err)
		}
	}
	// A store failure is not reported as bad credentials.
	if _, err := a.Header(ctx, "Bearer "+Token(store.DeviceID{0xff}, secret)); !errors.Is(err, errOutage) {
		t.Errorf("store outage: %v", err)
	}
	if _, err := Hash(secret[:31]); err != ErrBadSecret {
		t.Errorf("short secret: %v", err)
	}
}

func TestTokenRoundTrip(t *testing.T) {
	id := store.NewDeviceID()
	secret := make([]byte, 32)
	secret[5] = 9
	got, s, err := ParseToken(Token(id, secret))
	if err != nil || got != id || string(s) != string(secret) {
		t.Fatalf("round trip: %v %v", got, err)
	}
}
