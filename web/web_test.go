package web_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hush-chat/hush/web"
)

func get(t *testing.T, h http.Handler, method, path string, header ...string) *http.Response {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func body(t *testing.T, r *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHandler checks the embedded build and how it is served: the page
// for / and the page's own routes, its assets by their hashed names, the
// WebAssembly core gzipped (or not, for a client that does not take
// gzip), and nothing else.
func TestHandler(t *testing.T) {
	if !web.Built() {
		t.Fatal("web/dist holds no build: run `make web`")
	}
	h := web.Handler()

	r := get(t, h, "GET", "/")
	page := body(t, r)
	if r.StatusCode != 200 || !strings.Contains(r.Header.Get("Content-Type"), "text/html") || !bytes.Contains(page, []byte(`<div id="app">`)) {
		t.Fatalf("GET / = %d %s", r.StatusCode, r.Header.Get("Content-Type"))
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP = %q", csp)
	}
	if r := get(t, h, "GET", "/some/route"); r.StatusCode != 200 || !bytes.Equal(body(t, r), page) {
		t.Errorf("GET /some/route = %d, not the page", r.StatusCode)
	}

	// Every asset the page names is there, cached for good.
	for _, m := range regexp.MustCompile(`(?:src|href)="(/[^"]+)"`).FindAllSubmatch(page, -1) {
		r := get(t, h, "GET", string(m[1]))
		if r.StatusCode != 200 {
			t.Errorf("GET %s = %d", m[1], r.StatusCode)
		}
		if strings.HasPrefix(string(m[1]), "/assets/") && !strings.Contains(r.Header.Get("Cache-Control"), "immutable") {
			t.Errorf("GET %s: Cache-Control %q", m[1], r.Header.Get("Cache-Control"))
		}
	}

	r = get(t, h, "GET", "/hush.wasm", "Accept-Encoding", "gzip, deflate, br")
	gz := body(t, r)
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "application/wasm" || r.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("GET /hush.wasm = %d %q %q", r.StatusCode, r.Header.Get("Content-Type"), r.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	wasm, err := io.ReadAll(zr)
	if err != nil || !bytes.HasPrefix(wasm, []byte("\x00asm")) {
		t.Fatalf("hush.wasm is not WebAssembly: %v", err)
	}
	r = get(t, h, "GET", "/hush.wasm", "Accept-Encoding", "identity")
	if plain := body(t, r); r.Header.Get("Content-Encoding") != "" || !bytes.Equal(plain, wasm) {
		t.Errorf("GET /hush.wasm without gzip: Content-Encoding %q, %d bytes", r.Header.Get("Content-Encoding"), len(plain))
	}

	etag := get(t, h, "GET", "/hush.wasm", "Accept-Encoding", "gzip").Header.Get("ETag")
	if r := get(t, h, "GET", "/hush.wasm", "Accept-Encoding", "gzip", "If-None-Match", etag); r.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation = %d, want 304", r.StatusCode)
	}
	if r := get(t, h, "GET", "/missing.js"); r.StatusCode != 404 {
		t.Errorf("GET /missing.js = %d, want 404", r.StatusCode)
	}
	if r := get(t, h, "POST", "/"); r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST / = %d, want 405", r.StatusCode)
	}
}

// TestBrowser runs the end-to-end suite in web/e2e (npm test): real
// Chromium pages and a real hush server and CLI. It needs Node.js, the
// npm packages (npm ci in web/) and Chromium; without them it is skipped
// with the reason, except in CI, where it fails.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the browser tests take a minute")
	}
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	// The suite drives `hush serve`, which must serve this package.
	deps, err := exec.Command("go", "list", "-deps", "github.com/hush-chat/hush/cmd/hush").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	if !strings.Contains(string(deps), "github.com/hush-chat/hush/web\n") {
		t.Skip("skipping the browser tests: hush serve does not mount web.Handler() yet")
	}
	var missing []string
	if _, err := exec.LookPath("node"); err != nil {
		missing = append(missing, "node")
	}
	if _, err := exec.LookPath("npm"); err != nil {
		missing = append(missing, "npm")
	}
	if _, err := os.Stat(chromium); err != nil {
		missing = append(missing, chromium+" (apt-get install chromium)")
	}
	if _, err := os.Stat(filepath.Join("node_modules", "playwright-core")); err != nil {
		missing = append(missing, "web/node_modules (npm ci in web/)")
	}
	if len(missing) > 0 {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must run the browser tests, but these are missing: %s", strings.Join(missing, ", "))
		}
		t.Skipf("skipping the browser tests: missing %s", strings.Join(missing, ", "))
	}
	cmd := exec.Command("npm", "test")
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if testing.Verbose() || err != nil {
		t.Logf("npm test:\n%s", out.String())
	}
	if err != nil {
		t.Fatalf("the browser tests failed: %v", err)
	}
}
