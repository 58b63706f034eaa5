package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/server/auth"
	"github.com/hush-chat/hush/server/provision"
	"github.com/hush-chat/hush/store"
)

var (
	errDraining    = &proto.Error{Code: proto.CodeUnavailable, Message: "the server is shutting down; retry on another node or later"}
	errRateLimited = &proto.Error{Code: proto.CodeRateLimited, Message: "too many requests; slow down"}
)

// statuses gives the HTTP status each code travels with.
var statuses = map[proto.Code]int{
	proto.CodeBadRequest:    http.StatusBadRequest,
	proto.CodeTooLarge:      http.StatusRequestEntityTooLarge,
	proto.CodeUnauthorized:  http.StatusUnauthorized,
	proto.CodeForbidden:     http.StatusForbidden,
	proto.CodeNotFound:      http.StatusNotFound,
	proto.CodeMethod:        http.StatusMethodNotAllowed,
	proto.CodeConflict:      http.StatusConflict,
	proto.CodeUsernameTaken: http.StatusConflict,
	proto.CodeGroupExists:   http.StatusConflict,
	proto.CodeEpochConflict: http.StatusConflict,
	proto.CodeNoKeyPackage:  http.StatusNotFound,
	proto.CodeRateLimited:   http.StatusTooManyRequests,
	proto.CodeVersion:       http.StatusBadRequest,
	proto.CodeInternal:      http.StatusInternalServerError,
	proto.CodeUnavailable:   http.StatusServiceUnavailable,
}

// toProto turns an error of the server's packages into the error the
// client sees. Unexpected errors become CodeInternal, with no detail.
func toProto(err error) *proto.Error {
	var pe *proto.Error
	var conflict *store.EpochConflictError
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &pe):
		return pe
	case errors.As(err, &maxErr):
		return &proto.Error{Code: proto.CodeTooLarge, Message: "request body is too large"}
	case errors.As(err, &conflict):
		epoch := conflict.Current
		return &proto.Error{Code: proto.CodeEpochConflict, Message: "another commit won this epoch; process the group's messages and retry", Epoch: &epoch}
	case errors.Is(err, auth.ErrUnauthorized):
		return &proto.Error{Code: proto.CodeUnauthorized, Message: "missing or wrong device credentials"}
	case errors.Is(err, store.ErrNotMember):
		return &proto.Error{Code: proto.CodeForbidden, Message: "the device is not on the group's roster"}
	case errors.Is(err, store.ErrNoKeyPackage):
		return &proto.Error{Code: proto.CodeNoKeyPackage, Message: "no KeyPackage is available for the requested devices"}
	case errors.Is(err, store.ErrDuplicateUsername):
		return &proto.Error{Code: proto.CodeUsernameTaken, Message: "the username is taken"}
	case errors.Is(err, store.ErrExists):
		return &proto.Error{Code: proto.CodeGroupExists, Message: "a group with this id exists"}
	case errors.Is(err, store.ErrNotFound):
		return &proto.Error{Code: proto.CodeNotFound, Message: notFoundWhat(err) + " not found"}
	case errors.Is(err, store.ErrInvalid):
		// The store's messages describe the argument, never its content.
		return &proto.Error{Code: proto.CodeBadRequest, Message: strings.TrimPrefix(err.Error(), "store: ")}
	case errors.Is(err, provision.ErrNotFound):
		return &proto.Error{Code: proto.CodeNotFound, Message: "no such linking channel, or it expired"}
	case errors.Is(err, provision.ErrWritten):
		return &proto.Error{Code: proto.CodeConflict, Message: "the box was already written"}
	case errors.Is(err, provision.ErrForbidden):
		return &proto.Error{Code: proto.CodeForbidden, Message: "only the device that opened the channel writes the old box"}
	case errors.Is(err, provision.ErrBadBox):
		return &proto.Error{Code: proto.CodeBadRequest, Message: `box must be "new" or "old"`}
	case errors.Is(err, provision.ErrFull):
		return &proto.Error{Code: proto.CodeUnavailable, Message: "too many linking channels are open; retry later"}
	case errors.Is(err, store.ErrClosed), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &proto.Error{Code: proto.CodeUnavailable, Message: "the server is busy or shutting down; retry"}
	}
	return &proto.Error{Code: proto.CodeInternal, Message: "internal error"}
}

// notFoundWhat names what was not found from the store's error text
// ("group …: store: not found" → "group").
func notFoundWhat(err error) string {
	for _, what := range []string{"user", "device", "group", "blob"} {
		if strings.HasPrefix(err.Error(), what) || strings.Contains(err.Error(), ": "+what) {
			return what
		}
	}
	return "item"
}

func (a *API) writeError(w http.ResponseWriter, r *http.Request, pe *proto.Error) {
	if err := writeJSON(w, statuses[pe.Code], pe); err != nil {
		a.Logger.Debug("write error answer", "err", err)
	}
}

// writeErrorFor answers err, logging the unexpected ones (with the error
// text, which never contains secrets or payloads).
func (a *API) writeErrorFor(w http.ResponseWriter, r *http.Request, dev *store.Device, err error) {
	pe := toProto(err)
	if pe.Code == proto.CodeInternal {
		attrs := []any{"route", r.Pattern, "err", err}
		if dev != nil {
			attrs = append(attrs, "device", dev.ID)
		}
		a.Logger.Error("request failed", attrs...)
	}
	a.writeError(w, r, pe)
}
