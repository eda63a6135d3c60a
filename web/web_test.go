package web

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/chatcluster/chat"
)

func TestFSHasTheClient(t *testing.T) {
	for _, name := range []string{"index.html", "app.js", "state.js", "style.css"} {
		if _, err := fs.Stat(FS(), name); err != nil {
			t.Errorf("FS() lacks %s: %v", name, err)
		}
	}
}

// Every absolute asset path in index.html and every relative import in the
// modules must exist, or the page breaks only in a browser.
func TestReferencedFilesExist(t *testing.T) {
	files := FS()
	index, err := fs.ReadFile(files, "index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?:src|href)="/([^"/][^"]*)"`).FindAllStringSubmatch(string(index), -1) {
		if _, err := fs.Stat(files, m[1]); err != nil {
			t.Errorf("index.html refers to /%s, which is missing", m[1])
		}
	}
	imports := regexp.MustCompile(`from '(\.\.?/[^']+)'`)
	err = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".js") {
			return err
		}
		src, err := fs.ReadFile(files, p)
		if err != nil {
			return err
		}
		// Relative to the importing module: lib/ holds the client library.
		for _, m := range imports.FindAllStringSubmatch(string(src), -1) {
			if _, err := fs.Stat(files, path.Join(path.Dir(p), m[1])); err != nil {
				t.Errorf("%s imports %s, which is missing", p, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	cases := []struct {
		path, wantType, wantBody string
	}{
		{"/", "text/html", "<title>Chat</title>"},
		{"/billy/", "text/html", "<title>Chat</title>"},
		{"/g/123/", "text/html", "<title>Chat</title>"},
		{"/index.html", "text/html", "<title>Chat</title>"},
		{"/app.js", "javascript", "import"},
		{"/style.css", "text/css", ":root"},
		{"/../../etc/passwd", "text/html", "<title>Chat</title>"},
	}
	for _, c := range cases {
		res, err := http.Get(srv.URL + c.path)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d", c.path, res.StatusCode)
		}
		if ct := res.Header.Get("Content-Type"); !strings.Contains(ct, c.wantType) {
			t.Errorf("%s: Content-Type %q, want %q", c.path, ct, c.wantType)
		}
		if !strings.Contains(string(body), c.wantBody) {
			t.Errorf("%s: body lacks %q", c.path, c.wantBody)
		}
		if res.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("%s: no Content-Security-Policy", c.path)
		}
	}
	res, err := http.Post(srv.URL+"/", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: status %d", res.StatusCode)
	}
}

// The page may open WebSockets to its own host only: ws:// and wss:// on
// the Host it was requested with, no scheme-wide ws: or wss:, and a Host
// that could smuggle a directive in gets 'self' alone.
func TestContentSecurityPolicyConnectsToOwnHost(t *testing.T) {
	h := Handler()
	connectSrc := func(host string) []string {
		t.Helper()
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		csp := rec.Header().Get("Content-Security-Policy")
		for _, d := range strings.Split(csp, ";") {
			f := strings.Fields(d)
			if len(f) > 0 && f[0] == "connect-src" {
				return f[1:]
			}
		}
		t.Fatalf("Host %q: no connect-src in %q", host, csp)
		return nil
	}
	for host, want := range map[string][]string{
		"chat.example.com":    {"'self'", "ws://chat.example.com", "wss://chat.example.com"},
		"127.0.0.1:8080":      {"'self'", "ws://127.0.0.1:8080", "wss://127.0.0.1:8080"},
		"[::1]:8080":          {"'self'", "ws://[::1]:8080", "wss://[::1]:8080"},
		"":                    {"'self'"},
		"evil.example; a *":   {"'self'"},
		"x.example wss:":      {"'self'"},
		"x.example,wss://y.z": {"'self'"},
	} {
		got := connectSrc(host)
		if !slices.Equal(got, want) {
			t.Errorf("Host %q: connect-src %q, want %q", host, got, want)
		}
		for _, src := range got {
			if src == "ws:" || src == "wss:" || src == "*" {
				t.Errorf("Host %q: connect-src allows %s, any host", host, src)
			}
		}
	}
}

// Every top-level name the client serves is a reserved username (issue
// 14): a user named "app.js" would otherwise get the file at /app.js/
// instead of their conversation. Adding a file reserves its name here.
func TestServedNamesAreReservedUsernames(t *testing.T) {
	entries, err := fs.ReadDir(FS(), ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := chat.FoldUsername(e.Name()); !ok {
			continue // cannot be a username anyway
		}
		if !chat.ReservedUsername(e.Name()) {
			t.Errorf("web/static/%s is served at /%s/ but %q may be registered", e.Name(), e.Name(), e.Name())
		}
	}
}
