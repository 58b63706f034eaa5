package keys

import (
	"bytes"
	"testing"

	"github.com/hush-chat/hush/mls"
)

// FuzzParse: KeyPackage parsing never panics, and a real KeyPackage is
// named by its KeyPackageRef.
func FuzzParse(f *testing.F) {
	key, err := mls.GenerateSignatureKey(mls.DefaultCipherSuite)
	if err != nil {
		f.Fatal(err)
	}
	kp, err := mls.NewKeyPackage(key, mls.KeyPackageOptions{Credential: mls.BasicCredential([]byte("fuzz"))})
	if err != nil {
		f.Fatal(err)
	}
	data, err := (&mls.MLSMessage{WireFormat: mls.WireFormatKeyPackage, KeyPackage: kp.KeyPackage}).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	got, err := Parse(data, false)
	if err != nil {
		f.Fatal(err)
	}
	ref, _ := kp.KeyPackage.Ref()
	if !bytes.Equal(got.Ref, ref) || got.LastResort {
		f.Fatalf("parsed %x, want ref %x", got.Ref, ref)
	}
	if _, err := Parse(data, true); err == nil {
		f.Fatal("a KeyPackage without the last_resort extension was taken as last-resort")
	}
	f.Add(data)
	f.Add([]byte{0, 1, 0, 5})
	f.Fuzz(func(t *testing.T, data []byte) {
		Parse(data, false)
		Parse(data, true)
	})
}
