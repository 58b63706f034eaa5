package delivery

import (
	"bytes"
	"fmt"

	"github.com/hush-chat/hush/mls"
	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/store"
)

// badRequest and tooLarge make the errors of malformed requests; their
// messages name the field at fault and never echo its content.
func badRequest(format string, args ...any) *proto.Error {
	return &proto.Error{Code: proto.CodeBadRequest, Message: fmt.Sprintf(format, args...)}
}

func tooLarge(format string, args ...any) *proto.Error {
	return &proto.Error{Code: proto.CodeTooLarge, Message: fmt.Sprintf(format, args...)}
}

// CheckGroupID checks a group id's length.
func CheckGroupID(id []byte) error {
	switch {
	case len(id) == 0:
		return badRequest("group id is missing")
	case len(id) > proto.MaxGroupIDBytes:
		return tooLarge("group id is longer than %d bytes", proto.MaxGroupIDBytes)
	}
	return nil
}

// checkSend checks a Send's fields and returns the parsed roster of a
// commit.
func checkSend(group store.GroupID, req *proto.Send) ([]store.DeviceID, error) {
	if err := CheckGroupID(group); err != nil {
		return nil, err
	}
	switch {
	case req.ClientMsgID == "":
		return nil, badRequest("client_msg_id is missing")
	case len(req.ClientMsgID) > proto.MaxClientMsgIDBytes:
		return nil, tooLarge("client_msg_id is longer than %d bytes", proto.MaxClientMsgIDBytes)
	case len(req.Payload) == 0:
		return nil, badRequest("payload is missing")
	case len(req.Payload) > proto.MaxMessageBytes:
		return nil, tooLarge("payload is larger than %d bytes", proto.MaxMessageBytes)
	}
	switch req.Kind {
	case proto.KindApplication, proto.KindProposal:
		if len(req.Roster) > 0 || len(req.Welcomes) > 0 {
			return nil, badRequest("roster and welcomes go with commits only")
		}
	case proto.KindCommit:
	case proto.KindWelcome:
		return nil, badRequest("welcomes are sent with the commit that adds their devices")
	default:
		return nil, badRequest("unknown message kind %q", req.Kind)
	}
	if err := checkMLS(req.Kind, group, req.Epoch, req.Payload); err != nil {
		return nil, err
	}
	if req.Kind != proto.KindCommit {
		return nil, nil
	}
	roster, err := parseDevices("roster", req.Roster, proto.MaxRosterSize)
	if err != nil {
		return nil, err
	}
	if len(roster) == 0 {
		return nil, badRequest("a commit needs the roster that follows it")
	}
	on := make(map[store.DeviceID]bool, len(roster))
	for _, d := range roster {
		on[d] = true
	}
	for i, w := range req.Welcomes {
		ds, err := parseDevices(fmt.Sprintf("welcomes[%d].device_ids", i), w.DeviceIDs, proto.MaxRosterSize)
		if err != nil {
			return nil, err
		}
		if len(ds) == 0 {
			return nil, badRequest("welcomes[%d] lists no device", i)
		}
		for _, d := range ds {
			if !on[d] {
				return nil, badRequest("welcomes[%d] is for a device that is not on the new roster", i)
			}
		}
		if len(w.Payload) > proto.MaxMessageBytes {
			return nil, tooLarge("welcomes[%d].payload is larger than %d bytes", i, proto.MaxMessageBytes)
		}
		if m, err := mls.UnmarshalMLSMessage(w.Payload); err != nil || m.WireFormat != mls.WireFormatWelcome {
			return nil, badRequest("welcomes[%d].payload is not an MLSMessage(Welcome)", i)
		}
	}
	return roster, nil
}

// parseDevices parses a list of device ids of at most max entries.
func parseDevices(field string, ids []string, max int) ([]store.DeviceID, error) {
	if len(ids) > max {
		return nil, tooLarge("%s lists more than %d devices", field, max)
	}
	out := make([]store.DeviceID, len(ids))
	for i, s := range ids {
		d, err := store.ParseDeviceID(s)
		if err != nil {
			return nil, badRequest("%s[%d] is not a device id", field, i)
		}
		out[i] = d
	}
	return out, nil
}

// contentTypes says which MLS content type each kind must carry.
var contentTypes = map[proto.Kind]mls.ContentType{
	proto.KindApplication: mls.ContentApplication,
	proto.KindProposal:    mls.ContentProposal,
	proto.KindCommit:      mls.ContentCommit,
}

// checkMLS checks, without any key, that payload is an MLSMessage framing
// content of the declared kind for this group and epoch. Application data
// must be a PrivateMessage (RFC 9420 §6.2); handshakes may be either.
func checkMLS(kind proto.Kind, group store.GroupID, epoch uint64, payload []byte) error {
	m, err := mls.UnmarshalMLSMessage(payload)
	if err != nil {
		return badRequest("payload is not a well-formed MLSMessage")
	}
	var gid []byte
	var ep uint64
	var ct mls.ContentType
	switch m.WireFormat {
	case mls.WireFormatPublicMessage:
		c := &m.PublicMessage.Content
		gid, ep, ct = c.GroupID, c.Epoch, c.ContentType
		if ct == mls.ContentApplication {
			return badRequest("application data must be a PrivateMessage")
		}
	case mls.WireFormatPrivateMessage:
		pm := m.PrivateMessage
		gid, ep, ct = pm.GroupID, pm.Epoch, pm.ContentType
	default:
		return badRequest("payload must be a PublicMessage or a PrivateMessage")
	}
	switch {
	case ct != contentTypes[kind]:
		return badRequest("payload content type does not match kind %q", kind)
	case !bytes.Equal(gid, group):
		return badRequest("payload is for another group")
	case ep != epoch:
		return badRequest("payload epoch %d does not match the declared epoch %d", ep, epoch)
	}
	return nil
}
