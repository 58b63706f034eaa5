# Builds what the Go build embeds: the web client's assets in web/dist
# (see web/README.md). `go run ./cmd/hush serve` and `go test ./...` need
# only Go; this needs Node.js and npm as well.
#
#   make web        rebuild web/dist from web/src and web/wasm
#   make web-test   rebuild, then run the browser end-to-end tests
#                   (screenshots go to the ignored web/e2e/out/screenshots)
#   make web-screenshots  run them and refresh the committed screenshots
#                   in web/e2e/screenshots (then commit those)

GO    ?= go
NPM   ?= npm
DIST  ?= web/dist
GOROOT_DIR := $(shell $(GO) env GOROOT)
WASM_EXEC  := $(firstword $(wildcard $(GOROOT_DIR)/lib/wasm/wasm_exec.js $(GOROOT_DIR)/misc/wasm/wasm_exec.js))

.PHONY: all web web-test web-screenshots web-deps
all: web

web/node_modules/.package-lock.json: web/package-lock.json
	cd web && $(NPM) ci --no-audit --no-fund
web-deps: web/node_modules/.package-lock.json

# The build is reproducible: a pinned lock file, content-hashed asset
# names, and the wasm built without paths, build id or VCS stamp, then
# gzipped without a name or time (the server serves it as is to browsers
# that accept gzip, which all do).
#
# The wasm's bytes depend on the Go release, so the committed build is made
# with WEB_GO; another release builds a different dist (make web
# WEB_GO=$$(go env GOVERSION) to do that anyway, for local work).
WEB_GO ?= go1.26.8
GO_VERSION := $(shell $(GO) env GOVERSION)
web: web-deps
	@test "$(GO_VERSION)" = "$(WEB_GO)" || { echo "web/dist is built with $(WEB_GO), this is $(GO_VERSION) (WEB_GO=$(GO_VERSION) to build anyway)"; exit 1; }
	@test -n "$(WASM_EXEC)" || { echo "wasm_exec.js not found under $(GOROOT_DIR)"; exit 1; }
	cp "$(WASM_EXEC)" web/public/wasm_exec.js
	cd web && $(NPM) run --silent build -- --outDir "$(abspath $(DIST))" --emptyOutDir
	CGO_ENABLED=0 GOOS=js GOARCH=wasm $(GO) build -trimpath -buildvcs=false -ldflags="-s -w -buildid=" -o "$(DIST)/hush.wasm" ./web/wasm
	CGO_ENABLED=0 GOOS=js GOARCH=wasm $(GO) build -trimpath -buildvcs=false -ldflags="-s -w -buildid=" -o "$(DIST)/sframe.wasm" ./web/wasm/sframe
	gzip -9 -n -f "$(DIST)/hush.wasm" "$(DIST)/sframe.wasm"

web-test: web
	cd web && $(NPM) test

web-screenshots: web
	cd web && HUSH_E2E_SCREENSHOTS=update $(NPM) test
