package server

import (
	"net/http"
	"strings"

	"github.com/hush-chat/hush/proto"
	"github.com/hush-chat/hush/web"
)

// withWeb serves the API under /v1/ (and its health and metrics paths)
// and the web client (package web) everywhere else, so that the page and
// the API it calls share one origin.
func withWeb(api http.Handler) http.Handler {
	page := web.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p == "/v1" || strings.HasPrefix(p, "/v1/") || p == proto.PathHealth || p == proto.PathMetrics {
			api.ServeHTTP(w, r)
			return
		}
		page.ServeHTTP(w, r)
	})
}
