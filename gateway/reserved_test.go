package gateway_test

import (
	"net/http"
	"strings"
	"testing"
)

// Issue 14 part 6: every path the web client serves, and names kept for
// later ones, cannot be registered; the answer is the taken-name one, so
// clients need nothing new. Ordinary names with dots still can.
func TestReservedUsernamesRefused(t *testing.T) {
	e := newEnv(t)
	a := e.signup(t, e.name("rsv"), "")
	for _, name := range []string{"api", "API", "app.js", "style.css", "index.html", "icon.svg", "lib",
		"sw.js", "manifest.json", "admin", "login", "signup", "settings", "static", "metrics", "new.js"} {
		e.fail(t, "POST", "/api/v1/signup", "", map[string]string{"username": name, "password": testPassword}, http.StatusConflict, "username_taken")
		// Nothing was made: the name is still nobody's.
		var found struct {
			Users []apiUser `json:"users"`
		}
		e.call(t, "GET", "/api/v1/users?prefix="+strings.ToLower(name), a.Token, nil, http.StatusOK, &found)
		for _, u := range found.Users {
			if u.Username == strings.ToLower(name) {
				t.Errorf("reserved %q was registered", name)
			}
		}
	}
	e.signup(t, e.name("jo.smith"), "")
}
