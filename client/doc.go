// Package client is the Hush client core: one implementation of the
// protocol for the CLI, the terminal UI and the web client (compiled to
// WebAssembly). It keeps a device's identity, its MLS groups and its
// messages, talks to a Hush server, and never lets plaintext or a private
// key leave the device unencrypted.
//
// # A tour
//
// A [Client] is opened on a [Storage] (package client/sqlite, or
// client/profile for a directory with a key file) and a [StoreKey]:
//
//	c, err := profile.Open(ctx, dir, profile.Options{Create: true})
//	acct, err := c.Register(ctx, "https://hush.example", "alice")
//
// Register makes the account's identity key, this device's MLS signature
// key and the certificate binding them, a random device secret, and
// uploads KeyPackages so that others can add the device to groups.
// [Client.Link] and [Client.LinkNew] add more devices to an account.
//
// Every conversation is an MLS group whose members are devices: all the
// devices of every user in it, the user's own other devices included, so
// that what one device sends shows on the others. [Client.Direct] finds or
// starts the 1:1 chat with a user, [Client.CreateGroup] starts a named
// group, [Client.AddMembers] and [Client.RemoveMember] change it (a user
// comes and goes with all their devices).
//
// [Client.SendText], [Client.Reply], [Client.React], [Client.Edit],
// [Client.Delete], [Client.MarkRead] and [Client.SendAttachment] send the
// message model of [Content] inside MLS application messages.
// [Client.Sync] fetches and processes everything pending; [Client.Run]
// stays connected over a WebSocket, processes what is pushed, reconnects
// and catches up. Changes are reported as [Event]s to Options.OnEvent, and
// [Client.Conversations], [Client.Messages] and [Client.Members] read the
// local state.
//
// # Sending and receiving, exactly once
//
// A send is saved before it leaves: the message, the MLS group state that
// encrypting advanced, and an outbox entry, in one transaction. The outbox
// is resent, with the same client message id, until the server answers,
// so a retry is stored once. Commits are merged only after the server
// accepted them; one that lost its epoch to another member's commit is
// discarded, and the change is planned again after catching up (a few
// times at most).
//
// A received batch is processed in one transaction that saves the MLS
// state, the messages it decrypted and the per-log cursors together; the
// server is acknowledged only after that transaction commits, and
// envelopes at or below a cursor are skipped. A crash at any point loses
// nothing and shows nothing twice.
//
// # Disappearing messages
//
// A conversation's timer ([Client.SetTimer], from [MinTimer] to
// [MaxTimer], or off) is MLS group state, in the [ExtensionTimer] group
// context extension: every member's device agrees on it, any member
// changes it with a commit ([EventTimer] reports it), and a commit that
// sets a value out of range is refused before it is merged. Each message
// carries, encrypted, the timer in force when it was sent, and keeps it.
// Its timer starts at sending on the sender's devices and when it is
// first shown ([Client.Shown]) on the others; when it runs out, the
// message, its attachment's copy and key, its reactions and edits are
// deleted from the device ([EventExpired]) within a second while the
// client is open, and at [Open] otherwise, before anything is shown. The
// server deletes it once every device has it, and at the latest its
// timer plus a grace after it accepted it; so that the attachment
// outlives its blob, a device downloads it before acknowledging the
// message. See expiry.go and files.go.
//
// # Security considerations
//
// The server sees ids, sizes, times, rosters of device ids, KeyPackages
// and MLS handshakes (public keys, signatures, and the credentials
// "username/device"): never a message, a group's name, a file name, an
// attachment key, or a private key. Attachments are encrypted on the
// device with a fresh key per file (see [EncryptedSize]) and their digest
// is checked on download.
//
// A user's identity key signs a certificate for each of the user's device
// keys ([DeviceCertificate]). The client checks the certificate of every
// device it adds (a KeyPackage whose device is not certified is refused,
// with [ErrBadCertificate]) and of every member it meets in a Welcome or a
// commit (a failure there is an [EventWarning], since the group must go
// on, and [Client.Members] shows the device unverified). Identity keys are
// pinned on first use; a key that changes is never accepted silently: it
// is reported as [EventIdentityChanged], sending to conversations with
// that user is refused with [ErrIdentityChanged], and only
// [Client.ConfirmVerified], after the users compared [SafetyNumber]s,
// accepts it.
//
// Everything the local store writes is sealed with XChaCha20-Poly1305
// under the [StoreKey], bound to its table and row; row keys reveal
// nothing secret (the expiry index holds message ids and their expiry
// times in clear). Deleted rows are overwritten where the Storage can
// ([Scrubber]): client/sqlite keeps no copy of a disappeared message in
// its files, free pages and write-ahead log included. The key comes from
// a key file or a passphrase (Argon2id); see package client/profile.
// "Delete for everyone" and disappearing messages make every device that
// follows the protocol forget the message's content, but a device that
// was modified, or a screenshot, keeps what it saw.
//
// A device-linking code hands over the account for the few minutes it
// lives: it carries the secret that seals the identity key on its way to
// the new device (see [Client.Link]). A device removed from a group cannot
// decrypt anything sent after the commit that removed it.
package client
