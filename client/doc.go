// Package client is the Hush client core: one implementation of the
// protocol for the CLI, the terminal UI and the web client (compiled to
// WebAssembly). It keeps a device's identity, its MLS groups and its
// messages, talks to a Hush server, and never lets plaintext or a private
// key leave the device unencrypted.
//
// # Security considerations
//
// A user's identity key signs a certificate for each of the user's device
// keys ([DeviceCertificate]); the client checks it for every member it adds
// or meets. Contacts verify identity keys by comparing [SafetyNumber]s; a
// changed identity key is reported, never accepted silently.
package client
