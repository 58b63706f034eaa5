// Package store is the delivery service's storage: accounts, devices, MLS
// KeyPackages, groups with their message logs, per-device inboxes, and
// attachment metadata. The server relays end-to-end encrypted MLS messages,
// so nearly everything here is opaque bytes; the store routes only on ids,
// epochs and sequence numbers.
//
// # Backends
//
// Store is the interface; store/sqlite (one node, one file) and
// store/postgres (several nodes, one database) implement it, and
// store/storetest is the conformance suite that both pass. A server
// picks one at start-up:
//
//	st, err := sqlite.Open(ctx, "/var/lib/hush/hush.db")
//	st, err := postgres.Open(ctx, "postgres://hush@db/hush")
//
// Both apply their schema migrations at Open, safely when several
// processes start at once. Every method takes a context and is safe for
// concurrent use. Write methods return once the write is durable.
//
// # Groups, logs and cursors
//
// A group has an epoch and a roster: the devices that receive its
// messages. Its messages form one log, stored once for all recipients and
// numbered by a per-group sequence number that strictly increases.
// AppendMessage appends application messages and proposals; a sender must
// be on the roster (ErrNotMember). Each message carries a client-chosen
// idempotency key, so a client that retries after a lost reply gets the
// original sequence number back (Appended.Duplicate) instead of a copy.
//
// AppendCommit is how the epoch moves: it appends a commit only if the
// group is still at the epoch the commit was built on, then advances the
// epoch and replaces the roster, atomically. Of several commits racing for
// one epoch, from any number of nodes, exactly one wins; the others get an
// *EpochConflictError telling them the current epoch, and their clients
// process the winning commit and try again.
//
// Welcome messages (and anything else meant for one device) go to that
// device's inbox with AppendDirect.
//
// Each roster member has a cursor in the group's log. Fetch returns a
// device's inbox and then its groups' messages after its cursors (but not
// its own messages); Ack moves a cursor forward, never back, and AckDirect
// clears the inbox up to a point. A device added by a commit starts at that
// commit: it never receives the group's earlier history. A typical
// delivery loop, woken by package bus:
//
//	for {
//		p, err := st.Fetch(ctx, dev, 0)
//		// send p.Direct, then p.Messages, to the device; on its acks:
//		st.AckDirect(ctx, dev, lastDirectSeq)
//		st.Ack(ctx, dev, groupID, lastSeq) // per group
//	}
//
// # Retention
//
// Messages are deleted when their ExpiresAt passes; disappearing messages
// (those with ExpiresAt) as soon as every recipient has acknowledged them;
// others once every recipient has acknowledged them and Purge runs, or
// once they are older than the retention passed to Purge
// (DefaultRetention, 30 days, if zero). Run Purge periodically, and
// PurgeExpired every second or so, and delete the blob files they list
// from the BlobDir. The SQLite backend overwrites deleted rows and
// truncates its WAL in Purge, and in PurgeExpired when it deleted
// something, so purged content does not linger on disk.
//
// # Blobs
//
// Attachment bytes (already encrypted by clients) live in a BlobDir, which
// writes each blob atomically and returns its size and SHA-256; the store
// keeps their metadata (CreateBlob), and Purge expires them. ExpireBlobs
// ties the blobs of a disappearing message to it, so that PurgeExpired
// deletes them with the message.
//
// # Errors
//
// Methods return the sentinel errors below, wrapped; test with errors.Is
// (and errors.As for *EpochConflictError). Error messages name ids but
// never contain payloads, keys or secrets.
package store
