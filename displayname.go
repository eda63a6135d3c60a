package chat

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"
)

// Display names (issue 14). A display name is what other people see, so
// it must not hide text (zero-width characters), reorder it (bidi
// overrides and isolates), break lines or the screen (control
// characters), or pass for someone else's username. Sign-up applies these
// rules; names stored before them are read as they are (nobody is locked
// out).

// CleanDisplayName applies the display-name profile to s and reports
// whether it is acceptable: the PRECIS Nickname profile of RFC 8266
// (spaces mapped and collapsed, leading and trailing ones trimmed, NFKC;
// control, format (zero-width, bidi override and isolate, soft hyphen,
// BOM) and other disallowed code points refused), then 1-64 code points.
// Emoji variation selectors (U+FE0E, U+FE0F) are dropped first rather
// than refusing "❤️": they only choose a glyph's style.
func CleanDisplayName(s string) (string, bool) {
	if len(s) > 4*4*MaxDisplayName || !utf8.ValidString(s) {
		return "", false // bound the profile's work on hostile input
	}
	s = strings.Map(func(r rune) rune {
		if r == '\uFE0E' || r == '\uFE0F' {
			return -1
		}
		return r
	}, s)
	// A zero-width joiner right after an emoji builds an emoji sequence
	// ("👩‍💻", families, flags): the profile refuses every ZWJ, so those
	// are taken out for it and put back after the same emoji.
	var joins []int // the emoji count before each allowed ZWJ
	var plain strings.Builder
	emojis, prevEmoji := 0, false
	for _, r := range s {
		if r == '\u200D' && prevEmoji {
			joins = append(joins, emojis)
			prevEmoji = false
			continue
		}
		plain.WriteRune(r)
		prevEmoji = isEmoji(r)
		if prevEmoji {
			emojis++
		}
	}
	out, err := precis.Nickname.String(plain.String())
	if err != nil {
		return "", false
	}
	if len(joins) > 0 {
		var b strings.Builder
		n := 0
		for _, r := range out {
			b.WriteRune(r)
			if isEmoji(r) {
				n++
				for len(joins) > 0 && joins[0] == n {
					b.WriteRune('\u200D')
					joins = joins[1:]
				}
			}
		}
		if len(joins) > 0 {
			return "", false // the profile changed the emoji: refuse rather than guess
		}
		out = b.String()
	}
	if n := utf8.RuneCountInString(out); n < 1 || n > MaxDisplayName {
		return "", false
	}
	return out, true
}

// ValidDisplayName reports whether s is a display name the profile leaves
// as it is (the store's backstop: the gateway sends it cleaned).
func ValidDisplayName(s string) bool {
	out, ok := CleanDisplayName(s)
	return ok && out == s
}

// DisplayNameSkeleton is the username a display name could pass for:
// lower-cased, white space removed and letters that look like Latin ones
// (Cyrillic, Greek, and a few others of Unicode's confusables) replaced by
// them. It returns "" when the result is not a valid username shape. A
// display name whose skeleton is another user's username is refused, so
// that nobody appears as "alice" but alice.
func DisplayNameSkeleton(display string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(display) {
		if unicode.IsSpace(r) {
			continue
		}
		if l, ok := confusables[r]; ok {
			r = l
		}
		if r >= utf8.RuneSelf || !UsernameByte(byte(r)) {
			return ""
		}
		b.WriteRune(r)
	}
	if !ValidUsername(b.String()) {
		return ""
	}
	return b.String()
}

// confusables maps lower-case letters that render like a Latin letter, digit
// or username punctuation to it (a subset of Unicode's confusables.txt:
// the Cyrillic, Greek and Latin look-alikes most used to impersonate).
var confusables = map[rune]rune{
	// Cyrillic
	'а': 'a', 'в': 'b', 'с': 'c', 'ԁ': 'd', 'е': 'e', 'ё': 'e', 'һ': 'h', 'і': 'i', 'ї': 'i',
	'ј': 'j', 'к': 'k', 'ӏ': 'l', 'м': 'm', 'н': 'h', 'о': 'o', 'р': 'p', 'ԛ': 'q', 'ѕ': 's',
	'т': 't', 'ѵ': 'v', 'ԝ': 'w', 'х': 'x', 'у': 'y', 'ү': 'y',
	// Greek
	'α': 'a', 'β': 'b', 'ε': 'e', 'η': 'n', 'ι': 'i', 'κ': 'k', 'ν': 'v', 'ο': 'o', 'ρ': 'p',
	'τ': 't', 'υ': 'u', 'χ': 'x', 'γ': 'y', 'ω': 'w', 'ϲ': 'c', 'ϳ': 'j',
	// Latin and others
	'ı': 'i', 'ɩ': 'i', 'ɡ': 'g', 'ɑ': 'a', 'ℓ': 'l', 'ǀ': 'l', '‐': '-', '‑': '-', '‒': '-',
	'–': '-', '—': '-', '−': '-', '·': '.', '․': '.', '＿': '_',
}

// isEmoji approximates Extended_Pictographic: the emoji blocks, which
// the profile leaves as they are.
func isEmoji(r rune) bool {
	return r >= 0x1F000 && r <= 0x1FAFF || r >= 0x2600 && r <= 0x27BF || r >= 0x2B00 && r <= 0x2BFF
}

// ValidTitle reports whether s may be a group's title: 1-MaxTitle code
// points of UTF-8 with no control character (line breaks included) and no
// format character (zero-width, bidi override and isolate, BOM), except a
// zero-width joiner right after an emoji (emoji sequences). Titles are
// shown to every member, so they must not hide or reorder text either;
// unlike display names they may be anything else, look-alikes included.
func ValidTitle(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	n, prevEmoji := 0, false
	for _, r := range s {
		n++
		if unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) && !(r == '\u200D' && prevEmoji) {
			return false
		}
		prevEmoji = isEmoji(r)
	}
	return n >= 1 && n <= MaxTitle
}
