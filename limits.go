package chat

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"
)

// The protocol's limits (docs/PROTOCOL.md), defined once: the gateway checks
// them on the way in and the store holds them again as a backstop, so both
// use these.
const (
	MinUsername    = 3
	MaxUsername    = 32
	MinPassword    = 8   // code points
	MaxPassword    = 256 // code points
	MaxDisplayName = 64  // code points
	MaxTitle       = 128 // code points, a group's title
	MaxBody        = 4096
	MaxClientID    = 64
	// MaxGroupMembers is the default bound of a group's members. A group
	// is created with at most MaxMembersPage of them and grows by adding
	// pages of up to MaxMembersPage.
	MaxGroupMembers = 10000
	// MaxEmojiBytes bounds one reaction's emoji (a ZWJ family sequence
	// takes 25 bytes); MaxEmojiRunes its code points.
	MaxEmojiBytes = 32
	MaxEmojiRunes = 10
	// MaxReactionEmojis bounds the distinct emojis on one message, so that
	// a message's reactions stay a small, bounded set.
	MaxReactionEmojis = 20
	// QuoteLen bounds the code points of the original a reply quotes.
	QuoteLen = 200
	// MaxDevice bounds a session's device name (code points).
	MaxDevice = 64
	// MaxSessions is the default bound of one user's sessions: signing in
	// once more ends the least recently seen one.
	MaxSessions = 50
)

// ValidEmoji: 1-32 bytes of valid UTF-8, at most 10 code points, no white
// space, control characters or ASCII letters and digits alone (a reaction is
// an emoji, not a word; keycaps such as "1\uFE0F\u20E3" pass).
func ValidEmoji(s string) bool {
	if len(s) < 1 || len(s) > MaxEmojiBytes || !utf8.ValidString(s) || utf8.RuneCountInString(s) > MaxEmojiRunes {
		return false
	}
	nonASCII := false
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
		if r >= 0x80 {
			nonASCII = true
		}
	}
	return nonASCII
}

// truncate cuts s to at most n code points.
func truncate(s string, n int) string {
	i := 0
	for j := range s {
		if i == n {
			return s[:j]
		}
		i++
	}
	return s
}

// Bounds on what one reply or frame carries, whatever users write.
const (
	// MaxPageBytes bounds the JSON of one list or page (a history page, a
	// conversation list, a page of members) in a store reply, an HTTP
	// answer or a WebSocket frame: a page ends early, with its cursor,
	// when the next item would not fit. It stays well under NATS's default
	// max_payload (1 MiB), which caps every store reply, and under the
	// gateway's 4 MiB write queue. The largest message (4,096 control
	// characters, each escaped as \u00XX) is about 24.7 KB of JSON, so a
	// page holds at least 20 of them.
	MaxPageBytes = 512 << 10
	// MaxInlineMembers is the largest conversation whose members travel
	// inline (hello, lists, conversation frames) and whose members get
	// each other's presence frames; bigger groups carry member_count and
	// page their members on request (docs/PROTOCOL.md).
	MaxInlineMembers = 100
	// MaxMembersPage bounds a page of members, read or added in bulk.
	MaxMembersPage = 1000
)

// FoldUsername applies the username profile and reports whether u is a
// valid username: PRECIS UsernameCaseMapped (RFC 8265: width mapping, NFC,
// lower case), then 3-32 characters of [a-z0-9_.-]. Sign up, log in, search
// and the store all go through it, so one name has one spelling.
//
// Input the profile maps to anything but its plain ASCII lower case is
// refused rather than folded: a Kelvin sign (U+212A) or a fullwidth "ｋ"
// would otherwise log in as "k", a name that only looks like what was
// typed.
func FoldUsername(u string) (string, bool) {
	if len(u) > 4*MaxUsername {
		return "", false // bound the profile's work on hostile input
	}
	lower := asciiLower(u)
	folded, err := precis.UsernameCaseMapped.String(u)
	if err != nil || folded != lower {
		return lower, false
	}
	return folded, ValidUsername(folded)
}

// asciiLower lower-cases A-Z only.
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}, s)
}

// ValidUsername reports whether u, already folded, is a valid username.
// Every such name is stable under the PRECIS profile (ASCII lower case,
// digits and _ . - map to themselves), so the store can check with it.
func ValidUsername(u string) bool {
	if len(u) < MinUsername || len(u) > MaxUsername {
		return false
	}
	for i := 0; i < len(u); i++ {
		if !UsernameByte(u[i]) {
			return false
		}
	}
	return true
}

// UsernameByte reports whether c may appear in a folded username (and so in
// a search prefix).
func UsernameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
}

// ValidPassword: 8-256 code points of valid UTF-8.
func ValidPassword(p string) bool {
	n := utf8.RuneCountInString(p)
	return utf8.ValidString(p) && n >= MinPassword && n <= MaxPassword
}

// ValidClientID: 1-64 printable ASCII characters.
func ValidClientID(s string) bool {
	if len(s) < 1 || len(s) > MaxClientID {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// ValidBody: 1-4096 code points of valid UTF-8, not only white space.
func ValidBody(s string) bool {
	n := utf8.RuneCountInString(s)
	if n < 1 || n > MaxBody || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsSpace(r) {
			return true
		}
	}
	return false
}
