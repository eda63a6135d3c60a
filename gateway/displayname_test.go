package gateway_test

import (
	"net/http"
	"strings"
	"testing"
)

// Issue 14 part 5: display names go through the PRECIS Nickname profile;
// control, zero-width and bidi characters are refused with a clear error
// and no account is made; a display name that passes for another user's
// username is refused; one's own username is fine.
func TestDisplayNameRules(t *testing.T) {
	e := newEnv(t)
	alice := e.signup(t, e.name("alice"), "Alice A")
	for what, d := range map[string]string{
		"NUL": "a\x00b", "newline": "Mallory\nAdmin", "tab": "a\tb", "C1 control": "a\u0085b",
		"zero-width space": "ali\u200bce", "zero-width joiner": "a\u200db", "BOM": "\ufeffbob",
		"right-to-left override": "evil\u202Egpj.exe", "isolate": "a\u2066b\u2069", "RLM": "a\u200fb",
		"65 code points": strings.Repeat("é", 65), "soft hyphen": "a\u00adb", "private use": "\ue000",
		"another's username":    alice.User.Username,
		"another's, upper case": strings.ToUpper(alice.User.Username),
		"another's, Cyrillic a": "\u0430" + alice.User.Username[1:],
		"another's, fullwidth":  "ａ" + alice.User.Username[1:],
		"another's, spaced":     alice.User.Username[:2] + " " + alice.User.Username[2:],
	} {
		name := e.name("dn")
		status, b := e.do(t, "POST", "/api/v1/signup", "", map[string]string{"username": name, "password": testPassword, "display_name": d})
		if status != http.StatusBadRequest {
			t.Errorf("%s: display_name %q: %d %s, want 400", what, d, status, b)
			continue
		}
		checkErrorBody(t, b, "invalid_request")
		// Nothing was made: the username is still free.
		e.signup(t, name, "")
	}
	for d, want := range map[string]string{
		"  Zoë   Smith ":        "Zoë Smith",
		"Zoe\u0308":             "Zoë",
		"ｂｉｌｌｙ ｂ":               "billy b",
		"الاسم":                 "الاسم",
		"I \u2764\uFE0F tea":    "I \u2764 tea",
		"👍🏽":                    "👍🏽",
		strings.Repeat("é", 64): strings.Repeat("é", 64),
	} {
		a := e.signup(t, e.name("dn"), d)
		if a.User.DisplayName != want {
			t.Errorf("display_name %q stored as %q, want %q", d, a.User.DisplayName, want)
		}
	}
	// One's own username, in any case, is one's display name.
	own := e.name("own")
	if a := e.signup(t, own, strings.ToUpper(own)); a.User.DisplayName != strings.ToUpper(own) {
		t.Errorf("own username as display name: %q", a.User.DisplayName)
	}
}
