package httpapi

import (
	"net/http"
	"strconv"

	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/server/auth"
	"github.com/hush-chat/hush/store"
)

// Accounts and devices

func checkNewDevice(d *proto.NewDevice) error {
	switch {
	case len(d.Secret) != proto.AuthSecretBytes:
		return &proto.Error{Code: proto.CodeBadRequest, Message: "device secret must be " + strconv.Itoa(proto.AuthSecretBytes) + " random bytes"}
	case len(d.Certificate) == 0:
		return &proto.Error{Code: proto.CodeBadRequest, Message: "device certificate is missing"}
	case len(d.Certificate) > proto.MaxCredentialBytes:
		return &proto.Error{Code: proto.CodeTooLarge, Message: "device certificate is larger than " + strconv.Itoa(proto.MaxCredentialBytes) + " bytes"}
	}
	return nil
}

func (a *API) register(w http.ResponseWriter, r *http.Request, _ *store.Device) error {
	var req proto.Register
	if err := decode(w, r, proto.MaxRequestBytes, &req); err != nil {
		return err
	}
	if _, err := store.NormalizeUsername(req.Username); err != nil {
		return err
	}
	switch {
	case len(req.IdentityKey) == 0:
		return &proto.Error{Code: proto.CodeBadRequest, Message: "identity_key is missing"}
	case len(req.IdentityKey) > proto.MaxIdentityKeyBytes:
		return &proto.Error{Code: proto.CodeTooLarge, Message: "identity_key is larger than " + strconv.Itoa(proto.MaxIdentityKeyBytes) + " bytes"}
	}
	if err := checkNewDevice(&req.Device); err != nil {
		return err
	}
	hash, err := auth.Hash(req.Device.Secret)
	clear(req.Device.Secret)
	if err != nil {
		return err
	}
	u, err := a.Store.CreateUser(r.Context(), req.Username, req.IdentityKey)
	if err != nil {
		return err
	}
	d, err := a.Store.CreateDevice(r.Context(), u.ID, hash, req.Device.Certificate)
	if err != nil {
		return err
	}
	a.Logger.Info("user registered", "user", u.ID, "device", d.ID)
	return writeJSON(w, http.StatusCreated, proto.Registered{UserID: u.ID.String(), DeviceID: d.ID.String()})
}

func (a *API) user(w http.ResponseWriter, r *http.Request, _ *store.Device) error {
	u, err := a.Store.UserByName(r.Context(), r.PathValue("username"))
	if err != nil {
		return err
	}
	ds, err := a.Store.UserDevices(r.Context(), u.ID)
	if err != nil {
		return err
	}
	info := proto.UserInfo{UserID: u.ID.String(), Username: u.Username, IdentityKey: u.IdentityKey, Devices: []proto.DeviceInfo{}}
	for _, d := range ds {
		if !d.Revoked {
			info.Devices = append(info.Devices, proto.DeviceInfo{DeviceID: d.ID.String(), Certificate: d.Credential})
		}
	}
	return writeJSON(w, http.StatusOK, info)
}

func (a *API) addDevice(w http.ResponseWriter, r *http.Request, dev *store.Device) error {
	var req proto.NewDevice
	if err := decode(w, r, proto.MaxRequestBytes, &req); err != nil {
		return err
	}
	if err := checkNewDevice(&req); err != nil {
		return err
	}
	hash, err := auth.Hash(req.Secret)
	clear(req.Secret)
	if err != nil {
		return err
	}
	d, err := a.Store.CreateDevice(r.Context(), dev.UserID, hash, req.Certificate)
	if err != nil {
		return err
	}
	a.Logger.Info("device linked", "user", dev.UserID, "device", d.ID, "by", dev.ID)
	return writeJSON(w, http.StatusCreated, proto.Registered{UserID: dev.UserID.String(), DeviceID: d.ID.String()})
}

func (a *API) revokeDevice(w http.ResponseWriter, r *http.Request, dev *store.Device) error {
	id, err := store.ParseDeviceID(r.PathValue("id"))
	if err != nil {
		return &proto.Error{Code: proto.CodeBadRequest, Message: "not a device id"}
	}
	target, err := a.Store.Device(r.Context(), id)
	if err != nil {
		return err
	}
	if target.UserID != dev.UserID {
		return &proto.Error{Code: proto.CodeForbidden, Message: "a device can revoke only devices of its own user"}
	}
	if err := a.Delivery.Revoke(r.Context(), id); err != nil {
		return err
	}
	a.Logger.Info("device revoked", "user", dev.UserID, "device", id, "by", dev.ID)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// KeyPackages

func (a *API) uploadKeyPackages(w http.ResponseWriter, r *http.Request, dev *store.Device) error {
	var req proto.UploadKeyPackages
	if err := decode(w, r, proto.MaxRequestBytes, &req); err != nil {
		return err
	}
	c, err := a.Keys.Upload(r.Context(), dev.ID, req.KeyPackages)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, c)
}

func (a *API) countKeyPackages(w http.ResponseWriter, r *http.Request, dev *store.Device) error {
	c, err := a.Keys.Count(r.Context(), dev.ID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, c)
}

func (a *API) claim(w http.ResponseWriter, r *http.Request, _ *store.Device) error {
	var req proto.Claim
	if err := decode(w, r, proto.MaxRequestBytes, &req); err != nil {
		return err
	}
	c, err := a.Keys.Claim(r.Context(), &req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, c)
}

// Groups and messages

func (a *API) createGroup(w http.ResponseWriter, r *http.Request, dev *store.Device) error {
	var req proto.CreateGroup
	if err := decode(w, r, proto.MaxRequestBytes, &req); err != nil {
		return err
	}
	if err := a.Delivery.CreateGroup(r.Context(), dev.ID, req.GroupID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (a *API) send(w http.ResponseWriter, r *http.Request, dev *store.Device) error {
	group, err := pathGroupID(r)
	if err != nil {
		return err
	}
	var req proto.Send
	if err := decode(w, r, proto.MaxRequestBytes, &req); err != nil {
		return err
	}
	sent, err := a.Delivery.Send(r.Context(), dev.ID, group, &req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, sent)
}

func (a *API) fetch(w http.ResponseWriter, r *http.Request, dev *store.Device) error {
	limit := proto.MaxFetch
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > proto.MaxFetch {
			return &proto.Error{Code: proto.CodeBadRequest, Message: "limit must be 1 to " + strconv.Itoa(proto.MaxFetch)}
		}
		limit = n
	}
	m, err := a.Delivery.Fetch(r.Context(), dev.ID, limit)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, m)
}

func (a *API) ack(w http.ResponseWriter, r *http.Request, dev *store.Device) error {
	var req proto.Ack
	if err := decode(w, r, proto.MaxRequestBytes, &req); err != nil {
		return err
	}
	if err := a.Delivery.Ack(r.Context(), dev.ID, req.Acks); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// Blobs

func (a *API) uploadBlob(w http.ResponseWriter, r *http.Request, dev *store.Device) error {
	if r.ContentLength > proto.MaxBlobBytes {
		return &proto.Error{Code: proto.CodeTooLarge, Message: "blob is larger than " + strconv.Itoa(proto.MaxBlobBytes) + " bytes"}
	}
	ref, err := a.Blobs.Put(r.Context(), dev.ID, http.MaxBytesReader(w, r.Body, proto.MaxBlobBytes))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, ref)
}

func (a *API) downloadBlob(w http.ResponseWriter, r *http.Request, _ *store.Device) error {
	id, err := store.ParseBlobID(r.PathValue("id"))
	if err != nil {
		return &proto.Error{Code: proto.CodeBadRequest, Message: "not a blob id"}
	}
	f, b, err := a.Blobs.Open(r.Context(), id)
	if err != nil {
		return err
	}
	defer f.Close()
	w.Header().Set("Content-Type", proto.ContentTypeBlob)
	http.ServeContent(w, r, "", b.CreatedAt, f)
	return nil
}

// Device linking

func (a *API) openProvision(w http.ResponseWriter, r *http.Request, dev *store.Device) error {
	var req proto.Provision
	if r.ContentLength != 0 {
		if err := decode(w, r, proto.MaxRequestBytes, &req); err != nil {
			return err
		}
	}
	c, err := a.Provision.Open(dev.ID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, c)
}

func (a *API) getProvision(w http.ResponseWriter, r *http.Request, _ *store.Device) error {
	b, err := a.Provision.Get(r.PathValue("id"), r.URL.Query().Get("box"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, b)
}

func (a *API) putProvision(w http.ResponseWriter, r *http.Request, dev *store.Device) error {
	var req proto.ProvisionBox
	if err := decode(w, r, proto.MaxProvisionBytes*2, &req); err != nil {
		return err
	}
	switch {
	case len(req.Data) == 0:
		return &proto.Error{Code: proto.CodeBadRequest, Message: "data is missing"}
	case len(req.Data) > proto.MaxProvisionBytes:
		return &proto.Error{Code: proto.CodeTooLarge, Message: "data is larger than " + strconv.Itoa(proto.MaxProvisionBytes) + " bytes"}
	}
	var writer *store.DeviceID
	if dev != nil {
		writer = &dev.ID
	}
	if err := a.Provision.Put(r.PathValue("id"), writer, req); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
