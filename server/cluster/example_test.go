package cluster_test

import (
	"context"
	"log"

	"github.com/hush-chat/hush/server/cluster"
)

// A node of a cluster opens the directory on the NATS server its bus
// uses, with its own public URL, and asks it on each join.
func ExampleNATS() {
	ctx := context.Background()
	dir, err := cluster.Connect(ctx, cluster.Config{
		URL:  "nats://127.0.0.1:4222",
		Self: "https://node-2.example.org",
		OnLost: func(r cluster.Room) {
			// End the room's calls here: another node hosts it now, and
			// its clients will rejoin there.
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer dir.Close()

	room := cluster.Room{GroupID: []byte("group id"), CallID: "call 1"}
	p, err := dir.Place(ctx, room)
	switch {
	case err != nil:
		// Answer CodeUnavailable; the client retries.
	case p.Local:
		// Host the room here; when its last participant leaves:
		defer dir.Release(ctx, room)
	default:
		// Point the client at p.URL, where the room lives.
	}
}
