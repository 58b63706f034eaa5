//go:build !linux

package httpapi

import "syscall"

// readyToRead reports whether bytes wait in c's receive queue: never
// known here (the poller, the only user, is Linux's epoll).
func readyToRead(syscall.Conn) bool { return false }
