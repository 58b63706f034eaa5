//go:build !linux

package netpoll

import "syscall"

// Poller is not available on this system.
type Poller struct{}

// Handle is a registered connection.
type Handle struct{}

// New returns ErrUnsupported on this system.
func New() (*Poller, error) { return nil, ErrUnsupported }

// Add returns ErrUnsupported on this system.
func (p *Poller) Add(c syscall.Conn, fn func()) (*Handle, error) { return nil, ErrUnsupported }

// Close does nothing on this system.
func (p *Poller) Close() error { return nil }

// Resume returns ErrUnsupported on this system.
func (h *Handle) Resume() error { return ErrUnsupported }

// Close does nothing on this system.
func (h *Handle) Close() error { return nil }
