// Package loadgen drives simulated devices against one Hush node or a
// cluster, for `hush bench`: it registers devices, sets up MLS groups on
// the server, sends and receives over the push WebSocket as clients do,
// and measures what the server accepts and delivers.
//
// # Traffic
//
// Every message is a real MLS PrivateMessage of about PayloadSize bytes,
// made by package mls, so the server's framing checks and storage see what
// they see in production. By default each group's creator encrypts a pool
// of messages up front and the senders replay them (the server cannot tell:
// it holds no keys), so that the bench's own CPU goes to the protocol, not
// to cryptography. With Config.MLS every member holds its own group state:
// senders encrypt each message and every receiver decrypts it, which
// measures what clients feel on a machine that also runs the server.
//
// # Workloads
//
//   - Latency: one message at a time between two devices (on two nodes of
//     a cluster), the next sent once the previous one arrived.
//   - Senders: n devices send into one conversation at once, each message
//     after the previous one's answer (closed loop); every member is
//     online and receives the others' messages.
//   - Fanout: a few members of a large group send; every message is pushed
//     to all the others.
//   - Idle: many authenticated WebSockets held open with pings, spread over
//     loopback source addresses (127.0.0.1, 127.0.0.2, …; on Linux any
//     127.0.0.0/8 address can be bound without setup) to get past the
//     ephemeral port range of one source address, measuring the server's
//     resident memory per connection.
//
// Latency is measured from the sender's write to each receiver's read of
// the push; the sender learns the message's sequence number from the
// server's answer, which may come after the push, and the two are matched
// by sequence number.
//
// Spawn starts `hush serve` nodes for a run (SQLite, or a fresh PostgreSQL
// schema dropped afterwards, with NATS for several nodes), with rate limits
// off and, for profiles, --pprof.
package loadgen
