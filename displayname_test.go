package chat

import (
	"strings"
	"testing"
)

// Issue 14 part 5: display names through the PRECIS Nickname profile;
// control, zero-width and bidi characters refused.
func TestCleanDisplayName(t *testing.T) {
	for _, c := range []struct {
		in, want string
		ok       bool
	}{
		{"Alice", "Alice", true},
		{"  Alice   Smith ", "Alice Smith", true},    // spaces trimmed and collapsed
		{"Zoë", "Zoë", true},                         // NFC already
		{"Zoe\u0308", "Zoë", true},                   // combining diaeresis composed (NFKC)
		{"ｂｉｌｌｙ", "billy", true},                     // fullwidth to ASCII
		{"الاسم", "الاسم", true},                     // right-to-left script itself is fine
		{"😀 party", "😀 party", true},                 // emoji
		{"👍🏽", "👍🏽", true},                           // skin tone modifier
		{"I \u2764\uFE0F tea", "I \u2764 tea", true}, // variation selector dropped
		{"a\x00b", "", false},                        // NUL
		{"a\nb", "", false},                          // newline
		{"a\tb", "", false},                          // tab
		{"a\x7fb", "", false},                        // DEL
		{"a\u0085b", "", false},                      // C1 control
		{"a\u200bb", "", false},                      // zero-width space
		{"a\u200cb", "", false},                      // zero-width non-joiner
		{"a\u200db", "", false},                      // zero-width joiner
		{"\U0001F468\u200d\U0001F469", "\U0001F468\u200d\U0001F469", true},         // an emoji ZWJ sequence
		{"Ann \U0001F469\u200d\U0001F4BB", "Ann \U0001F469\u200d\U0001F4BB", true}, // woman technologist
		{"a\u200d\U0001F469", "", false},                                           // ZWJ after a letter
		{"a\u2060b", "", false},                                                    // word joiner
		{"a\ufeffb", "", false},                                                    // BOM
		{"a\u00adb", "", false},                                                    // soft hyphen
		{"a\u034fb", "", false},                                                    // combining grapheme joiner
		{"evil\u202Egpj.exe", "", false},                                           // right-to-left override
		{"a\u202Ab", "", false},                                                    // LRE
		{"a\u2066b\u2069", "", false},                                              // LRI ... PDI
		{"a\u2067b", "", false},                                                    // RLI
		{"a\u200Fb", "", false},                                                    // RLM
		{"a\u061Cb", "", false},                                                    // Arabic letter mark
		{"a\uE000b", "", false},                                                    // private use
		{"a\U000E0041b", "", false},                                                // tag character
		{"", "", false},                                                            // empty
		{"   ", "", false},                                                         // only spaces
		{"\u3000", "", false},                                                      // ideographic space only
		{strings.Repeat("x", 64), strings.Repeat("x", 64), true},
		{strings.Repeat("x", 65), "", false},
		{strings.Repeat("é", 64), strings.Repeat("é", 64), true},
		{"\xff", "", false},                           // not UTF-8
		{strings.Repeat(" ", 10000) + "x", "", false}, // hostile length
	} {
		got, ok := CleanDisplayName(c.in)
		if ok != c.ok || ok && got != c.want {
			t.Errorf("CleanDisplayName(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
		if ok && !ValidDisplayName(got) {
			t.Errorf("ValidDisplayName(%q) = false for a cleaned name", got)
		}
	}
	if ValidDisplayName("  two  spaces") {
		t.Error("ValidDisplayName accepted a name the profile changes")
	}
}

func TestDisplayNameSkeleton(t *testing.T) {
	for in, want := range map[string]string{
		"alice":      "alice",
		"Alice":      "alice",
		"ALICE":      "alice",
		"\u0430lice": "alice", // Cyrillic a
		"аlісе":      "alice", // Cyrillic a, i, c, e
		"Αlice":      "alice", // Greek capital alpha
		"al ice":     "alice",
		"bob.smith":  "bob.smith",
		"Bob Smith":  "bobsmith",
		"Zoë":        "", // ë is not a username letter
		"ab":         "", // too short to be a username
		"😀":          "",
		"a/b/c":      "",
	} {
		if got := DisplayNameSkeleton(in); got != want {
			t.Errorf("DisplayNameSkeleton(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestValidTitle(t *testing.T) {
	for _, c := range []struct {
		title string
		ok    bool
	}{
		{"Team", true},
		{"Équipe 日本 🎉", true},
		{"devs 👩\u200d💻", true},                  // an emoji sequence
		{strings.Repeat("é", MaxTitle), true},    // at the limit
		{strings.Repeat("é", MaxTitle+1), false}, // past it
		{"", false},
		{"a\nb", false},         // a line break
		{"a\x00b", false},       // NUL
		{"a\u200bb", false},     // zero-width space
		{"a\u200db", false},     // a joiner not after an emoji
		{"abc\u202etxt", false}, // right-to-left override
		{"a\u2066b", false},     // left-to-right isolate
		{"\ufeffa", false},      // BOM
		{"a\xc0b", false},       // not UTF-8
	} {
		if got := ValidTitle(c.title); got != c.ok {
			t.Errorf("ValidTitle(%q) = %v, want %v", c.title, got, c.ok)
		}
	}
}
