package chat

import "strings"

// Reserved usernames. The web client opens `/<username>/`, and the gateway
// serves its own paths (the API, the client's files, operational endpoints)
// on the same port: a user named like one of them would get a page that is
// not their conversation, or shadow a file. Sign-up refuses these names;
// accounts that already hold one keep working (log in, be found, talk).

// reservedUsernames are the first path segments the gateway and the web
// client serve, and names kept for pages a chat site commonly adds later.
var reservedUsernames = map[string]bool{
	// served now: gateway/http.go, web/web.go and the files of web/static
	"api": true, "ws": true, "healthz": true, "readyz": true, "metrics": true,
	"debug": true, "lib": true, "index.html": true, "app.js": true,
	"api.js": true, "conn.js": true, "dom.js": true, "format.js": true,
	"messages.js": true, "sessions.js": true, "state.js": true,
	"style.css": true, "icon.svg": true,
	// kept for what a web client or a site grows
	"sw.js": true, "manifest.json": true, "manifest.webmanifest": true,
	"robots.txt": true, "favicon.ico": true, "admin": true, "administrator": true,
	"root": true, "system": true, "login": true, "logout": true, "signup": true,
	"signin": true, "register": true, "settings": true, "account": true,
	"static": true, "assets": true, "public": true, "auth": true, "oauth": true,
	"help": true, "about": true, "support": true, "security": true,
	"privacy": true, "terms": true, "status": true, "www": true, "well-known": true,
	".well-known": true, "push": true, "ticket": true, "token": true,
	"null": true, "undefined": true, "anonymous": true, "everyone": true,
	"moderator": true, "official": true, "staff": true,
}

// reservedSuffixes are file extensions a web server serves: a username
// ending in one could shadow a file added later.
var reservedSuffixes = []string{
	".js", ".mjs", ".css", ".html", ".htm", ".svg", ".json", ".webmanifest",
	".ico", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".txt", ".xml", ".map",
	".wasm", ".woff", ".woff2", ".php",
}

// ReservedUsername reports whether the folded username u may not be
// registered: a path the gateway or the web client serves, a name kept
// for one, or a name with a web file's extension.
func ReservedUsername(u string) bool {
	if reservedUsernames[u] {
		return true
	}
	for _, s := range reservedSuffixes {
		if strings.HasSuffix(u, s) {
			return true
		}
	}
	return false
}
