// Package web holds the browser client: plain ES modules and CSS embedded in
// the binary, so the gateway serves it with no separate web server and no
// build step.
package web

import (
	"bytes"
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// FS returns the client's files with index.html at the root.
func FS() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		// Unreachable: "static" is a valid directory embedded above.
		return static
	}
	return sub
}

// contentSecurityPolicy lets the page load only its own scripts and styles
// and talk only to its own origin, so a message body that slipped into the
// DOM as markup still could not run a script nor reach another host.
// host is the request's Host: the page's WebSocket goes to ws:// or wss://
// on it (behind a TLS ingress the page is https and the socket wss), and to
// no other host. A Host that is not a plain host[:port] gets 'self' alone.
func contentSecurityPolicy(host string) string {
	connect := "'self'"
	if validHost(host) {
		connect += " ws://" + host + " wss://" + host
	}
	return "default-src 'self'; script-src 'self'; style-src 'self'; " +
		"img-src 'self' data:; connect-src " + connect + "; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
}

// validHost reports whether h is a host[:port] safe to put into a header
// value: letters, digits, '.', '-', ':' and the brackets of an IPv6
// literal, nothing that could end a CSP directive or source.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == ':' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}

// Handler serves the client from FS: existing files as they are, and
// index.html for every other path (such as /billy/) so the client's router
// can take over. It is optional: a gateway may serve FS() its own way, as
// long as unknown paths get index.html.
func Handler() http.Handler {
	files := FS()
	index, err := fs.ReadFile(files, "index.html")
	if err != nil {
		index = []byte("web client missing")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy(r.Host))
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// Files change with the binary; revalidating is cheap and avoids a
		// stale app talking to a newer server.
		h.Set("Cache-Control", "no-cache")
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if name != "" && name != "index.html" {
			if st, err := fs.Stat(files, name); err == nil && !st.IsDir() {
				http.ServeFileFS(w, r, files, name)
				return
			}
		}
		h.Set("Content-Type", "text/html; charset=utf-8")
		http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(index))
	})
}
