package chat

import "testing"

// Usernames go through the PRECIS UsernameCaseMapped profile; what it
// would fold into a different-looking name is refused (issue 13, item 9).
func TestFoldUsernamePRECIS(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"billy", "billy", true},
		{"Billy_1.x-Y", "billy_1.x-y", true},
		{"\u212Aelvin", "", false},      // Kelvin sign: NFC makes it K, then k
		{"ｂｉｌｌｙ", "", false},            // fullwidth: width mapping makes it ASCII
		{"bi\u0307lly", "", false},      // a combining dot stays, not [a-z0-9_.-]
		{"stra\u00dfe", "", false},      // ß stays ß
		{"b\u200billy", "", false},      // zero-width space: PRECIS refuses it
		{"ab", "", false},               // too short
		{"a very long name", "", false}, // space
		{string(make([]byte, 200)), "", false},
	} {
		got, ok := FoldUsername(c.in)
		if ok != c.ok || ok && got != c.want {
			t.Errorf("FoldUsername(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}

// Every valid folded username is stable under the profile, so the store's
// check (ValidUsername) and the gateway's (FoldUsername) agree.
func TestValidUsernameStableUnderProfile(t *testing.T) {
	for _, u := range []string{"abc", "a_b.c-d", "0123456789", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"} {
		if !ValidUsername(u) {
			t.Fatalf("%q not valid", u)
		}
		if got, ok := FoldUsername(u); !ok || got != u {
			t.Fatalf("FoldUsername(%q) = %q, %v", u, got, ok)
		}
	}
}

// Issue 14: names the gateway serves cannot be registered; ordinary names,
// dots included, can.
func TestReservedUsername(t *testing.T) {
	for _, u := range []string{"api", "app.js", "style.css", "index.html", "icon.svg", "lib", "sw.js",
		"manifest.json", "admin", "login", "signup", "settings", "static", "metrics", "healthz", "ws",
		"future.js", "x.webmanifest", "robots.txt"} {
		if !ReservedUsername(u) {
			t.Errorf("ReservedUsername(%q) = false", u)
		}
	}
	for _, u := range []string{"billy", "apiary", "jo.smith", "admin_2", "js", "css.fan", "api-team"} {
		if ReservedUsername(u) {
			t.Errorf("ReservedUsername(%q) = true", u)
		}
	}
}
