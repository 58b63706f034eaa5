// Package netpoll tells when connections become readable without a
// goroutine per connection: one epoll instance (Linux) and one goroutine
// wait for all registered connections, and call a function once a
// connection has something to read.
//
// Registrations are one-shot: Handle.Resume arms one (Add leaves it
// disarmed, so that the caller can keep the Handle first), and after the
// function has been called it is not called again until Resume re-arms
// it. A
// server reads what arrived (on a worker of its own), then calls Resume;
// if more bytes are already waiting the function is called again at once.
// So at most one call per connection is under way, and frames are handled
// in order, while an idle connection costs no goroutine and no buffer.
//
// The function runs on the poller's goroutine and must not block: it
// should hand the work to a worker.
//
// On systems without epoll, New returns ErrUnsupported and callers fall
// back to a reading goroutine per connection.
package netpoll

import "errors"

// ErrUnsupported is returned by New where there is no epoll, and by Add
// for a connection that has no file descriptor.
var ErrUnsupported = errors.New("netpoll: not supported")

// ErrClosed is returned after the Poller or the Handle has been closed.
var ErrClosed = errors.New("netpoll: closed")
