package gateway

import (
	"net/http"
	"net/url"
	"strings"
)

// The Origin and CORS policy (PROTOCOL.md, "Origin and CORS"): same-origin
// by default. A browser request that carries an Origin whose host is not
// the request's own Host, and is not listed in Config.AllowedOrigins, is
// refused with 403 `forbidden`: an API call and a WebSocket upgrade alike.
// Requests without Origin (native clients, curl) are not browsers' and
// pass. A listed origin gets CORS headers, and its preflights an answer.
//
// Tokens travel in the Authorization header or the URL, never in cookies,
// so no request carries credentials by itself; the policy keeps other
// sites' pages from using a token they obtained, and says so explicitly
// for the WebSocket, which browsers do not subject to CORS at all.

// normalizeOrigin lower-cases an origin and drops a default port, so that
// configured and received origins compare as strings. "" when it is not a
// scheme://host[:port] origin.
func normalizeOrigin(o string) string {
	u, err := url.Parse(strings.TrimSpace(o))
	if err != nil || u.Scheme == "" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return ""
	}
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	if scheme == "http" {
		host = strings.TrimSuffix(host, ":80")
	} else if scheme == "https" {
		host = strings.TrimSuffix(host, ":443")
	}
	return scheme + "://" + host
}

// originAllowed applies the policy to a request's Origin and Host headers.
func (s *Server) originAllowed(origin, host string) bool {
	if origin == "" {
		return true
	}
	if s.sameOrigin(origin, host) {
		return true
	}
	return s.listedOrigin(origin)
}

// sameOrigin: the Origin names the host the request was sent to. The
// scheme is not compared: TLS ends at the ingress, so the gateway sees
// http for a page served over https.
func (s *Server) sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || host == "" {
		return false
	}
	oh, h := strings.ToLower(u.Host), strings.ToLower(host)
	if oh == h {
		return true
	}
	// A default port may be spelled on one side only.
	strip := func(x string) string {
		return strings.TrimSuffix(strings.TrimSuffix(x, ":80"), ":443")
	}
	return strip(oh) == strip(h)
}

// listedOrigin: the origin is in Config.AllowedOrigins ("*": any).
func (s *Server) listedOrigin(origin string) bool {
	if len(s.allowedOrigins) == 0 {
		return false
	}
	if _, ok := s.allowedOrigins["*"]; ok {
		return true
	}
	_, ok := s.allowedOrigins[normalizeOrigin(origin)]
	return ok
}

// originSet builds the lookup of the configured origins.
func originSet(list []string) map[string]struct{} {
	if len(list) == 0 {
		return nil
	}
	m := make(map[string]struct{}, len(list))
	for _, o := range list {
		if strings.TrimSpace(o) == "*" {
			m["*"] = struct{}{}
			continue
		}
		if n := normalizeOrigin(o); n != "" {
			m[n] = struct{}{}
		}
	}
	return m
}

// withOrigin applies the policy to the API: refuses other origins, adds
// CORS headers for listed ones, and answers their preflights.
func (s *Server) withOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/api/") {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Add("Vary", "Origin")
		origin := r.Header.Get("Origin")
		if origin == "" || s.sameOrigin(origin, r.Host) {
			next.ServeHTTP(w, r)
			return
		}
		if !s.listedOrigin(origin) {
			writeError(w, http.StatusForbidden, "forbidden", "origin not allowed")
			return
		}
		w.Header().Set("Access-Control-Allow-Origin", origin)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			w.Header().Set("Access-Control-Allow-Methods", "GET, POST")
			w.Header().Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// methodsOf answers 405 with Allow for a path the API serves with other
// methods (the catch-all routes would otherwise answer 404).
func methodsOf(mux *http.ServeMux) http.Handler {
	fallback := func(p string) bool { return p == "" || p == "/" || p == "/api/" }
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, p := mux.Handler(r); fallback(p) {
			var allow []string
			for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
				if m == r.Method {
					continue
				}
				r2 := *r
				r2.Method = m
				if _, p := mux.Handler(&r2); !fallback(p) {
					allow = append(allow, m)
				}
			}
			if len(allow) > 0 {
				w.Header().Set("Allow", strings.Join(allow, ", "))
				writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; allowed: "+strings.Join(allow, ", "))
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}
