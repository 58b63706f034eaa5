package rtc

import (
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
)

// reuseAttributes is an interceptor that spares the receive interceptors
// (NACK generator, receiver reports) an allocation per RTP packet. Each
// of them needs the packet's parsed header, which it takes from the
// packet's interceptor.Attributes; pion reads a track with nil
// Attributes, so the first of them made a map and a header for every
// packet. Registered first, this interceptor's reader is the innermost:
// it gives every packet of a stream the same Attributes and the same
// header, parsed again for each packet.
//
// The Attributes that a track's Read returns are therefore valid until
// its next Read only. Neither the SFU nor client/call use them, and pion
// keeps them past a Read only for RTX repair packets and packets peeked
// while probing simulcast streams, neither of which a call negotiates.
type reuseAttributes struct{ interceptor.NoOp }

type reuseAttributesFactory struct{}

func (reuseAttributesFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &reuseAttributes{}, nil
}

// BindRemoteStream wraps a stream's reader, once per stream.
func (*reuseAttributes) BindRemoteStream(_ *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	attrs := interceptor.Attributes{}
	var hdr *rtp.Header // attrs' header, once GetRTPHeader has stored one
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := r.Read(b, a)
		if err != nil || a != nil {
			return n, a, err
		}
		if hdr == nil {
			// Parses the header and keeps it in attrs, under the key the
			// other interceptors look it up by.
			if hdr, err = attrs.GetRTPHeader(b[:n]); err != nil {
				hdr = nil
				return 0, nil, err
			}
			return n, attrs, nil
		}
		if _, err := hdr.Unmarshal(b[:n]); err != nil {
			return 0, nil, err
		}
		return n, attrs, nil
	})
}
