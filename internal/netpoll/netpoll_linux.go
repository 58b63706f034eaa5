//go:build linux

package netpoll

import (
	"errors"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Poller waits for many connections at once. It is safe for concurrent
// use.
type Poller struct {
	epfd int
	efd  int // eventfd that wakes the waiting goroutine on Close

	mu     sync.Mutex
	next   uint64
	m      map[uint64]*Handle
	closed bool
	done   chan struct{}
}

// Handle is one registered connection.
type Handle struct {
	p  *Poller
	id uint64
	fd int
	fn func()

	mu     sync.Mutex
	closed bool
}

const wakeID = 0 // the eventfd's id; connections start at 1

// New starts a Poller.
func New() (*Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setID(&ev, wakeID)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, efd, &ev); err != nil {
		unix.Close(efd)
		unix.Close(epfd)
		return nil, err
	}
	p := &Poller{epfd: epfd, efd: efd, next: wakeID + 1, m: make(map[uint64]*Handle), done: make(chan struct{})}
	go p.wait()
	return p, nil
}

// The 64-bit id of a registration travels in the event's data, so that an
// event for a closed connection whose descriptor was reused is not taken
// for the new one.
func setID(ev *unix.EpollEvent, id uint64) {
	ev.Fd = int32(uint32(id))
	ev.Pad = int32(uint32(id >> 32))
}

func getID(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// Add registers c, not yet waited for: after each call of Handle.Resume
// (the first included) fn is called once, on the poller's goroutine, when
// c is readable or its peer hung up (or has failed). Call Handle.Close
// before closing c.
func (p *Poller) Add(c syscall.Conn, fn func()) (*Handle, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, ErrUnsupported
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	h := &Handle{p: p, id: p.next, fd: fd, fn: fn}
	p.next++
	ev := unix.EpollEvent{Events: 0} // disarmed until Resume
	setID(&ev, h.id)
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return nil, err
	}
	p.m[h.id] = h
	return h, nil
}

const events = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// Resume waits for the connection: at first, and again after fn was
// called.
func (h *Handle) Resume() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	ev := unix.EpollEvent{Events: events}
	setID(&ev, h.id)
	return unix.EpollCtl(h.p.epfd, unix.EPOLL_CTL_MOD, h.fd, &ev)
}

// Close stops waiting for the connection. Call it before closing the
// connection itself. fn is not called after Close returns, except by a
// call already under way.
func (h *Handle) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	err := unix.EpollCtl(h.p.epfd, unix.EPOLL_CTL_DEL, h.fd, nil)
	h.mu.Unlock()
	h.p.mu.Lock()
	delete(h.p.m, h.id)
	h.p.mu.Unlock()
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EBADF) {
		err = nil // the descriptor was closed already, which deregisters it
	}
	return err
}

// Close stops the Poller. Registered functions are not called after Close
// returns; the connections themselves are left alone.
func (p *Poller) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	var one = [8]byte{1}
	if _, err := unix.Write(p.efd, one[:]); err != nil {
		return err
	}
	<-p.done
	unix.Close(p.efd)
	return unix.Close(p.epfd)
}

// wait is the poller's goroutine.
func (p *Poller) wait() {
	defer close(p.done)
	evs := make([]unix.EpollEvent, 256)
	ready := make([]*Handle, 0, len(evs))
	for {
		n, err := unix.EpollWait(p.epfd, evs, -1)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return // only on a broken epoll descriptor
		}
		ready = ready[:0]
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		for i := range n {
			if id := getID(&evs[i]); id != wakeID {
				if h := p.m[id]; h != nil {
					ready = append(ready, h)
				}
			}
		}
		p.mu.Unlock()
		for i, h := range ready {
			h.mu.Lock()
			closed := h.closed
			h.mu.Unlock()
			if !closed {
				h.fn()
			}
			ready[i] = nil
		}
	}
}
