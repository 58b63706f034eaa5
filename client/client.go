package client

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hush-chat/hush/mls"
	"github.com/hush-chat/hush/proto"
)

// Options configure a [Client].
type Options struct {
	// Storage holds the local state, sealed with Key. The Client closes
	// it on Close.
	Storage Storage
	Key     *StoreKey
	// Transport returns the transport to the server at a URL. Default:
	// an HTTPTransport over HTTPClient.
	Transport func(serverURL string) (Transport, error)
	// HTTPClient is the HTTP client of the default Transport
	// (http.DefaultClient if nil).
	HTTPClient *http.Client
	// OnEvent, if set, is called for every event (new message, edit,
	// member added, identity warning, ...), after the change it reports
	// is saved. It is called from the goroutine that made the change and
	// must not block for long or call back into the Client.
	OnEvent func(Event)
	// Logger receives diagnostics, never a key, a secret or content.
	Logger *slog.Logger
	// KeyPackageBatch is how many KeyPackages to upload at a time
	// (default 20).
	KeyPackageBatch int
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Client is one device's Hush client. It is safe for concurrent use:
// operations that change state take turns.
type Client struct {
	o   Options
	db  *store
	log *slog.Logger

	mu       sync.Mutex // serialises state-changing operations
	refilled time.Time  // last KeyPackage check; guarded by mu

	amu  sync.Mutex // guards acct, tr and live
	acct *accountRecord
	tr   Transport
	live PushConn

	hooks callHooks // the media side of calls (calls.go)

	// The expiry loop (expiry.go): woken when a timer starts, stopped by
	// Close. unscrubbed is set while deleted messages await Scrub; only
	// expire uses it.
	expiryWake chan struct{}
	stopExpiry context.CancelFunc
	expiryDone chan struct{}
	unscrubbed bool

	// beforeCallInvite, set only by tests, runs in StartCall between
	// catching up and sending the invite: another member calls then.
	beforeCallInvite func()
}

// ErrNoAccount is returned by operations that need an account when the
// store holds none yet.
var ErrNoAccount = errors.New("client: no account on this device (register or link first)")

// ErrAccountExists is returned by Register and link on a store that
// already holds an account.
var ErrAccountExists = errors.New("client: this device already has an account")

// Open opens a client on its local store. A new store is initialised
// with Key; an existing one must have been sealed with it (ErrWrongKey
// otherwise).
func Open(ctx context.Context, o Options) (*Client, error) {
	if o.Storage == nil || o.Key == nil {
		return nil, errors.New("client: Options.Storage and Options.Key are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.KeyPackageBatch <= 0 {
		o.KeyPackageBatch = 20
	}
	o.KeyPackageBatch = min(o.KeyPackageBatch, proto.MaxKeyPackageBatch-1)
	if o.Transport == nil {
		hc := o.HTTPClient
		o.Transport = func(u string) (Transport, error) { return NewHTTPTransport(u, hc) }
	}
	db, err := openStore(ctx, o.Storage, o.Key)
	if err != nil {
		return nil, err
	}
	c := &Client{o: o, db: db, log: o.Logger, expiryWake: make(chan struct{}, 1), expiryDone: make(chan struct{})}
	var acct accountRecord
	err = db.view(ctx, func(tx *tx) error {
		ok, err := tx.get(tableMeta, "account", &acct)
		if ok {
			c.acct = &acct
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	// Messages that disappeared while the client was closed go before
	// anything can be shown; if only scrubbing the storage failed, the
	// expiry loop tries again.
	if _, err := c.expire(ctx); err != nil && !c.unscrubbed {
		return nil, err
	}
	loop, stop := context.WithCancel(context.Background())
	c.stopExpiry = stop
	go c.expireLoop(loop)
	return c, nil
}

// Close stops deleting disappearing messages and closes the local store.
func (c *Client) Close() error {
	c.stopExpiry()
	<-c.expiryDone
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.db.st.Close()
}

// accountRecord is the device's account, sealed in meta/account.
type accountRecord struct {
	Server       string    `json:"server"`
	Username     string    `json:"username"`
	UserID       string    `json:"user_id"`
	DeviceID     string    `json:"device_id"`
	IdentitySeed []byte    `json:"identity_seed"`
	CipherSuite  uint16    `json:"cipher_suite"`
	SignatureKey []byte    `json:"signature_key"` // private
	Certificate  []byte    `json:"certificate"`
	Secret       []byte    `json:"secret"` // device authentication secret
	Created      time.Time `json:"created"`
}

// Account describes this device's account.
type Account struct {
	Server      string
	Username    string
	UserID      string
	DeviceID    string
	IdentityKey []byte // public
	Created     time.Time
}

func (a *accountRecord) public() *Account {
	id, _ := ParseIdentity(a.IdentitySeed)
	return &Account{Server: a.Server, Username: a.Username, UserID: a.UserID, DeviceID: a.DeviceID, IdentityKey: id.Public(), Created: a.Created}
}

func (a *accountRecord) identity() (*Identity, error) { return ParseIdentity(a.IdentitySeed) }

func (a *accountRecord) signatureKey() (*mls.SignatureKey, error) {
	return mls.ParseSignatureKey(mls.CipherSuite(a.CipherSuite), a.SignatureKey)
}

// credential is this device's MLS credential.
func (a *accountRecord) credential() mls.Credential {
	return mls.BasicCredential([]byte(a.Username + "/" + a.DeviceID))
}

// parseCredential splits a member's basic credential into its username
// and device id.
func parseCredential(cred mls.Credential) (username, deviceID string, ok bool) {
	if cred.Type != mls.CredentialBasic {
		return "", "", false
	}
	username, deviceID, ok = strings.Cut(string(cred.Identity), "/")
	if !ok || validUsername(username) != nil || deviceID == "" || len(deviceID) > 64 {
		return "", "", false
	}
	return username, deviceID, true
}

// Account returns this device's account, or ErrNoAccount.
func (c *Client) Account() (*Account, error) {
	a, err := c.account()
	if err != nil {
		return nil, err
	}
	return a.public(), nil
}

func (c *Client) account() (*accountRecord, error) {
	c.amu.Lock()
	defer c.amu.Unlock()
	if c.acct == nil {
		return nil, ErrNoAccount
	}
	return c.acct, nil
}

func (c *Client) setAccount(a *accountRecord) {
	c.amu.Lock()
	defer c.amu.Unlock()
	c.acct, c.tr = a, nil
}

// transport returns the transport to the account's server.
func (c *Client) transport() (Transport, error) {
	c.amu.Lock()
	defer c.amu.Unlock()
	if c.tr != nil {
		return c.tr, nil
	}
	if c.acct == nil {
		return nil, ErrNoAccount
	}
	tr, err := c.o.Transport(c.acct.Server)
	if err != nil {
		return nil, err
	}
	c.tr = tr
	return tr, nil
}

// authorization is the Authorization header of this device.
func (c *Client) authorization() (string, error) {
	a, err := c.account()
	if err != nil {
		return "", err
	}
	return authHeader(a.DeviceID, a.Secret), nil
}

// authHeader formats proto.HeaderAuthorization: the secret in unpadded
// base64url.
func authHeader(deviceID string, secret []byte) string {
	return "Bearer " + deviceID + "." + base64.RawURLEncoding.EncodeToString(secret)
}

// validUsername checks a (normalised) username: 3 to 32 of [a-z0-9_.-].
func validUsername(u string) error {
	if len(u) < 3 || len(u) > proto.MaxUsernameBytes {
		return fmt.Errorf("client: username %q must be 3 to %d characters", u, proto.MaxUsernameBytes)
	}
	for i := range len(u) {
		c := u[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("client: username %q may contain only a-z, 0-9, '_', '.' and '-'", u)
		}
	}
	return nil
}

// NormalizeUsername returns the canonical, lower-case form of a
// username, or an error if it is not valid.
func NormalizeUsername(u string) (string, error) {
	u = strings.ToLower(strings.TrimPrefix(u, "@"))
	return u, validUsername(u)
}

// Register creates an account on the server at serverURL: a fresh
// identity key, an MLS signature key and device certificate for this
// device, and a random device secret; then it uploads KeyPackages.
func (c *Client) Register(ctx context.Context, serverURL, username string) (*Account, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.account(); err == nil {
		return nil, ErrAccountExists
	}
	username, err := NormalizeUsername(username)
	if err != nil {
		return nil, err
	}
	tr, err := c.o.Transport(serverURL)
	if err != nil {
		return nil, err
	}
	id, err := NewIdentity()
	if err != nil {
		return nil, err
	}
	a := &accountRecord{Server: serverURL, Username: username, IdentitySeed: id.Seed(), Created: c.o.Now().UTC()}
	cert, err := a.newDevice(id, c.o.Now())
	if err != nil {
		return nil, err
	}
	c.amu.Lock()
	c.tr = tr
	c.amu.Unlock()
	var reg proto.Registered
	err = c.call(ctx, "POST", proto.PathAccounts, false, proto.Register{
		Username:    username,
		IdentityKey: id.Public(),
		Device:      proto.NewDevice{Secret: a.Secret, Certificate: cert},
	}, &reg)
	if err != nil {
		return nil, fmt.Errorf("client: register %s: %w", username, err)
	}
	a.UserID, a.DeviceID = reg.UserID, reg.DeviceID
	if err := c.saveAccount(ctx, a); err != nil {
		return nil, err
	}
	if err := c.uploadKeyPackages(ctx, c.o.KeyPackageBatch, true); err != nil {
		return nil, err
	}
	return a.public(), nil
}

// newDevice fills in a fresh signature key, certificate and secret.
func (a *accountRecord) newDevice(id *Identity, now time.Time) ([]byte, error) {
	key, err := mls.GenerateSignatureKey(mls.DefaultCipherSuite)
	if err != nil {
		return nil, err
	}
	cert, err := id.Certify(a.Username, uint16(key.CipherSuite()), key.Public(), now)
	if err != nil {
		return nil, err
	}
	a.Certificate, err = cert.Marshal()
	if err != nil {
		return nil, err
	}
	a.CipherSuite, a.SignatureKey = uint16(key.CipherSuite()), key.Bytes()
	a.Secret = make([]byte, proto.AuthSecretBytes)
	rand.Read(a.Secret)
	return a.Certificate, nil
}

// saveAccount stores the account and pins our own identity key as a
// contact, so that our other devices are checked like anyone's.
func (c *Client) saveAccount(ctx context.Context, a *accountRecord) error {
	err := c.db.update(ctx, func(tx *tx) error {
		if ok, err := tx.get(tableMeta, "account", new(accountRecord)); err != nil || ok {
			if ok {
				return ErrAccountExists
			}
			return err
		}
		if err := tx.put(tableMeta, "account", a); err != nil {
			return err
		}
		key, err := a.signatureKey()
		if err != nil {
			return err
		}
		self := &contactRecord{Username: a.Username, IdentityKey: a.public().IdentityKey, Verified: true, FirstSeen: a.Created,
			Devices: map[string][]byte{a.DeviceID: key.Public()}}
		return tx.putContact(self)
	})
	if err != nil {
		return err
	}
	c.setAccount(a)
	return nil
}

// --- KeyPackages ---

// uploadKeyPackages makes n KeyPackages (and a last-resort one if asked),
// keeps their private keys and uploads them.
func (c *Client) uploadKeyPackages(ctx context.Context, n int, lastResort bool) error {
	a, err := c.account()
	if err != nil {
		return err
	}
	key, err := a.signatureKey()
	if err != nil {
		return err
	}
	var up proto.UploadKeyPackages
	privs := map[string]*mls.KeyPackagePrivate{}
	for i := range n + 1 {
		last := i == n
		if last && !lastResort {
			break
		}
		kp, err := mls.NewKeyPackage(key, mls.KeyPackageOptions{Credential: a.credential(), LastResort: last, Extensions: []mls.ExtensionType{ExtensionTimer}})
		if err != nil {
			return err
		}
		ref, err := kp.KeyPackage.Ref()
		if err != nil {
			return err
		}
		data, err := (&mls.MLSMessage{WireFormat: mls.WireFormatKeyPackage, KeyPackage: kp.KeyPackage}).Marshal()
		if err != nil {
			return err
		}
		privs[hex.EncodeToString(ref)] = kp
		up.KeyPackages = append(up.KeyPackages, proto.KeyPackage{Data: data, LastResort: last})
	}
	// The private keys are saved before the upload: a KeyPackage the
	// server has must always be one we can join with.
	err = c.db.update(ctx, func(tx *tx) error {
		if lastResort {
			if err := tx.put(tableMeta, "last-resort", c.o.Now().UTC()); err != nil {
				return err
			}
		}
		for ref, kp := range privs {
			b, err := kp.MarshalBinary()
			if err != nil {
				return err
			}
			err = tx.put(tableKeyPackages, ref, b)
			clear(b)
			if err != nil {
				return err
			}
		}
		return nil
	})
	for _, kp := range privs {
		kp.Wipe()
	}
	if err != nil {
		return err
	}
	if err := c.call(ctx, "POST", proto.PathKeyPackages, true, up, nil); err != nil {
		return fmt.Errorf("client: upload KeyPackages: %w", err)
	}
	return nil
}

// lastResortMaxAge is how long a last-resort KeyPackage is used before a
// fresh one replaces it, well within its lifetime.
const lastResortMaxAge = 7 * 24 * time.Hour

// refillKeyPackages tops up the server's KeyPackages when they run low,
// and replaces the last-resort one when it grows old.
func (c *Client) refillKeyPackages(ctx context.Context) error {
	var count proto.KeyPackageCount
	if err := c.call(ctx, "GET", proto.PathKeyPackageCount, true, nil, &count); err != nil {
		return fmt.Errorf("client: KeyPackage count: %w", err)
	}
	var uploaded time.Time
	if err := c.db.view(ctx, func(tx *tx) error {
		_, err := tx.get(tableMeta, "last-resort", &uploaded)
		return err
	}); err != nil {
		return err
	}
	lastResort := c.o.Now().Sub(uploaded) > lastResortMaxAge
	n := 0
	if count.Count < count.RefillBelow {
		n = max(c.o.KeyPackageBatch, count.RefillBelow) - count.Count
	}
	if n == 0 && !lastResort {
		return nil
	}
	return c.uploadKeyPackages(ctx, min(n, proto.MaxKeyPackageBatch-1), lastResort)
}

// emit hands events to Options.OnEvent, and tells the media side of
// calls which epochs moved.
func (c *Client) emit(events []Event) {
	c.epochChanged(events)
	if c.o.OnEvent == nil {
		return
	}
	for _, e := range events {
		c.o.OnEvent(e)
	}
}
