// Package pb holds the Go bindings of mls_client.proto, the gRPC interface
// of the MLS interoperability test harness (the MLSClient service). The
// generated files are committed so that building Hush needs no protoc;
// regenerate them after changing mls_client.proto with `go generate`
// (protoc 3.21+, protoc-gen-go v1.36.12, protoc-gen-go-grpc v1.6.2 on PATH).
package pb

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go_opt=Mmls_client.proto=github.com/hush-chat/hush/internal/mlsinterop/pb;pb --go-grpc_out=. --go-grpc_opt=paths=source_relative --go-grpc_opt=Mmls_client.proto=github.com/hush-chat/hush/internal/mlsinterop/pb;pb mls_client.proto
