// Package test holds Hush's black-box tests: real servers started in
// process on 127.0.0.1:0, driven through real HTTP and WebSocket clients
// that speak the wire protocol of package proto. The API suite runs on the
// SQLite store, once over TLS (TestAPITLS), and once on PostgreSQL (skipped
// with a printed reason when PostgreSQL is unreachable and CI is unset;
// failing when CI is set).
//
// The test client sends opaque payloads where the server treats them as
// opaque, and real MLS messages, made with package mls, where the server
// checks their framing.
package test
