// Package web is the Hush web client, embedded in the hush binary: a page
// whose TypeScript front end (Preact, built with Vite) drives the Go client
// core compiled to WebAssembly (web/wasm). [Handler] serves it; `hush
// serve` mounts it at /.
//
// The built assets live in dist/, which is committed so that `go run
// ./cmd/hush serve` serves the page on a fresh clone with only Go
// installed. `make web` rebuilds dist/ from the sources, reproducibly (a
// pinned package-lock.json, content-hashed asset names, and a wasm build
// with -trimpath, no build id and no VCS stamp); rebuild and commit it
// when web/src, web/wasm or the client core change. See web/README.md.
//
// # Security considerations
//
// The page is served with a Content-Security-Policy that allows scripts
// from this origin only (and WebAssembly compilation), connections to
// this origin only, and no framing. The core keeps its state in
// IndexedDB, sealed twice: by the core, as on every platform, and by a
// non-extractable WebCrypto key (web/src/core/vault.ts).
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
)

//go:embed all:dist
var dist embed.FS

// csp is the page's Content-Security-Policy.
const csp = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

type asset struct {
	data    []byte
	gzipped bool // data is gzip; the file is served with Content-Encoding
	etag    string
	ctype   string
}

var (
	loadOnce sync.Once
	assets   map[string]*asset
)

// load indexes dist: each file by its path, a NAME.gz by NAME.
func load() {
	assets = make(map[string]*asset)
	fs.WalkDir(dist, "dist", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := dist.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "dist")
		a := &asset{data: data}
		if strings.HasSuffix(name, ".gz") {
			name, a.gzipped = strings.TrimSuffix(name, ".gz"), true
		}
		sum := sha256.Sum256(data)
		a.etag = `"` + hex.EncodeToString(sum[:12]) + `"`
		a.ctype = mime.TypeByExtension(path.Ext(name))
		switch path.Ext(name) {
		case ".wasm":
			a.ctype = "application/wasm"
		case ".js":
			a.ctype = "text/javascript; charset=utf-8"
		}
		if a.ctype == "" {
			a.ctype = "application/octet-stream"
		}
		assets[name] = a
		return nil
	})
}

// Built reports whether the assets are present (dist holds more than a
// placeholder).
func Built() bool {
	loadOnce.Do(load)
	return assets["/index.html"] != nil && assets["/hush.wasm"] != nil
}

// Handler serves the web client: /index.html for / and for every path
// that names no asset (the page routes itself), content-hashed assets
// under /assets/ cached for a year, and the rest revalidated by ETag.
// Only GET and HEAD are served.
func Handler() http.Handler {
	loadOnce.Do(load)
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := path.Clean("/" + r.URL.Path)
	a := assets[name]
	if a == nil {
		if path.Ext(name) != "" && name != "/" {
			http.NotFound(w, r)
			return
		}
		name, a = "/index.html", assets["/index.html"]
		if a == nil {
			http.Error(w, "the web client is not built: run `make web`", http.StatusNotFound)
			return
		}
	}
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("ETag", a.etag)
	h.Set("Vary", "Accept-Encoding")
	if strings.HasPrefix(name, "/assets/") {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	if name == "/index.html" {
		h.Set("Content-Security-Policy", csp)
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
	}
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, a.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := io.Reader(bytes.NewReader(a.data))
	if a.gzipped {
		if acceptsGzip(r) {
			h.Set("Content-Encoding", "gzip")
		} else {
			zr, err := gzip.NewReader(body)
			if err != nil {
				http.Error(w, "corrupt asset", http.StatusInternalServerError)
				return
			}
			defer zr.Close()
			body = zr
			h.Set("ETag", strings.TrimSuffix(a.etag, `"`)+`-identity"`)
		}
	}
	if !a.gzipped || h.Get("Content-Encoding") == "gzip" {
		h.Set("Content-Length", strconv.Itoa(len(a.data)))
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	io.Copy(w, body)
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}
