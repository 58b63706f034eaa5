package notify

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// NATS is a Bus over a NATS server, shared by every node of a deployment.
// Plain core NATS suffices (no JetStream): notifications are best-effort.
type NATS struct {
	nc *nats.Conn
}

var _ Bus = (*NATS)(nil)

// DialNATS connects to the NATS server at url (nats://host:port). It
// reconnects forever in the background; notifications published while
// disconnected are buffered by the client or lost, which the delivery
// service tolerates.
func DialNATS(url string, log *slog.Logger) (*NATS, error) {
	nc, err := nats.Connect(url,
		nats.Name("hush"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500*time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("nats disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info("nats reconnected") }),
	)
	if err != nil {
		return nil, fmt.Errorf("notify: connect to NATS: %w", err)
	}
	return &NATS{nc: nc}, nil
}

// Publish implements Bus.
func (n *NATS) Publish(subject string, data []byte) error {
	return n.nc.Publish(subject, data)
}

// Subscribe implements Bus.
func (n *NATS) Subscribe(subject string, fn func([]byte)) (func(), error) {
	sub, err := n.nc.Subscribe(subject, func(m *nats.Msg) { fn(m.Data) })
	if err != nil {
		return nil, fmt.Errorf("notify: subscribe: %w", err)
	}
	return func() { sub.Unsubscribe() }, nil
}

// Close implements Bus: it flushes what is buffered and disconnects.
func (n *NATS) Close() error {
	return n.nc.Drain()
}
