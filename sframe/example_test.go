package sframe_test

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"log"

	"github.com/hush-chat/hush/sframe"
)

func Example() {
	const kid = 7
	baseKey := []byte("a base key shared out of band")

	snd, err := sframe.NewSender(sframe.AES_128_GCM_SHA256_128, kid, baseKey)
	if err != nil {
		log.Fatal(err)
	}
	rcv, err := sframe.NewReceiver(sframe.AES_128_GCM_SHA256_128, sframe.DefaultReplayWindow)
	if err != nil {
		log.Fatal(err)
	}
	if err := rcv.AddKey(kid, baseKey); err != nil {
		log.Fatal(err)
	}

	metadata := []byte("rtp header extension")
	frame, err := snd.Encrypt(nil, metadata, []byte("an encoded video frame"))
	if err != nil {
		log.Fatal(err)
	}
	media, err := rcv.Decrypt(nil, metadata, frame)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", media)

	_, err = rcv.Decrypt(nil, metadata, frame)
	fmt.Println(err)
	// Output:
	// an encoded video frame
	// sframe: replayed or too old frame
}

func ExampleMLSKeys() {
	// exporter stands in for the MLS group's exporter for one epoch.
	exporter := func(epochSecret string) sframe.Exporter {
		return func(label string, context []byte, length int) ([]byte, error) {
			return hkdf.Expand(sha256.New, []byte(epochSecret), label+string(context), length)
		}
	}
	cfg := sframe.MLSConfig{Suite: sframe.AES_128_GCM_SHA256_128}
	alice, err := sframe.NewMLSKeys(cfg, 14, 2, exporter("epoch 14"))
	if err != nil {
		log.Fatal(err)
	}
	cfg.LeafIndex = 1
	bob, err := sframe.NewMLSKeys(cfg, 14, 2, exporter("epoch 14"))
	if err != nil {
		log.Fatal(err)
	}

	inFlight, _ := bob.Encrypt(nil, nil, []byte("sent in epoch 14"))

	// A commit moves the group to epoch 15.
	for _, m := range []*sframe.MLSKeys{alice, bob} {
		if err := m.SetEpoch(15, 2, exporter("epoch 15")); err != nil {
			log.Fatal(err)
		}
	}
	fresh, _ := bob.Encrypt(nil, nil, []byte("sent in epoch 15"))

	for _, frame := range [][]byte{inFlight, fresh} {
		h, _, _ := sframe.ParseHeader(frame)
		media, err := alice.Decrypt(nil, nil, frame)
		fmt.Printf("KID %#x: %s %v\n", h.KID, media, err)
	}
	// Output:
	// KID 0x1e: sent in epoch 14 <nil>
	// KID 0x1f: sent in epoch 15 <nil>
}
