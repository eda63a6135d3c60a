package gateway

import (
	"bytes"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// The cases of Autobahn|Testsuite 1-7 and 9, as its case files describe
// them, with sizes bounded (9.x: 64 KiB messages instead of up to 16 MiB;
// round trips 200 instead of 1000) and the testsuite's one-second pauses
// replaced by checkpoints. Where the chat protocol chooses otherwise
// (binary frames close with 1003, messages over 65,536 bytes with 1009:
// PROTOCOL.md, Limits) the case expects what the protocol says, and says
// why in its protocol field.

const (
	protoBinary = "binary frames close with 1003 (PROTOCOL.md, Limits)"
	protoSize   = "messages over 65,536 bytes close with 1009 (PROTOCOL.md, Limits)"
)

// checkpoint waits briefly with the connection open (the testsuite's
// pauses, so that frames arrive apart).
func checkpoint(label string) abStep { return abStep{check: label, wait: 50 * time.Millisecond} }

// failPoint waits for the server to fail the connection: OK when it does
// here, NON-STRICT when only later.
func failPoint(label string) abStep { return abStep{check: label, wait: 3 * time.Second} }

func send(b []byte) abStep               { return abStep{data: b} }
func sendChopped(b []byte, n int) abStep { return abStep{data: b, chop: n} }
func sendClose(code ws.StatusCode, reason []byte) abStep {
	return abStep{data: closeFrameBytes(code, reason), close: true}
}
func sendRawClose(payload []byte) abStep {
	return abStep{data: frame(ws.OpClose, true, payload), close: true}
}

func text(p string) []byte { return frame(ws.OpText, true, []byte(p)) }

var (
	echoClose = abClose{byMe: true, codes: []ws.StatusCode{ws.StatusNormalClosure}, clean: true}
	failWith  = func(code ws.StatusCode) abClose { return abClose{codes: []ws.StatusCode{code}} }
	fail1002  = failWith(ws.StatusProtocolError)
	fail1003  = failWith(ws.StatusUnsupportedData)
	fail1007  = failWith(ws.StatusInvalidFramePayloadData)
	fail1009  = failWith(ws.StatusMessageTooBig)
)

func one(evs ...abEvent) [][]abEvent { return [][]abEvent{evs} }

func autobahnCases() []abCase {
	var cs []abCase
	cs = append(cs, cases1()...)
	cs = append(cs, cases2()...)
	cs = append(cs, cases3()...)
	cs = append(cs, cases4()...)
	cs = append(cs, cases5()...)
	cs = append(cs, cases6()...)
	cs = append(cs, cases7()...)
	cs = append(cs, cases9()...)
	cs = append(cs, casesIssue13()...)
	return cs
}

// 1: framing: text and binary messages of the sizes at the length
// encodings' edges.
func cases1() []abCase {
	var cs []abCase
	sizes := []int{0, 125, 126, 127, 128, 65535, 65536, 65536}
	for i, n := range sizes {
		p := strings.Repeat("*", n)
		st := send(text(p))
		if i == 7 {
			st = sendChopped(text(p), 997)
		}
		cs = append(cs, abCase{id: fmt.Sprintf("1.1.%d", i+1), steps: []abStep{st}, ok: one(msgEv(p)), close: echoClose})
	}
	for i, n := range sizes {
		p := bytes.Repeat([]byte{0xfe}, n)
		st := send(frame(ws.OpBinary, true, p))
		if i == 7 {
			st = sendChopped(frame(ws.OpBinary, true, p), 997)
		}
		cs = append(cs, abCase{id: fmt.Sprintf("1.2.%d", i+1), steps: []abStep{st}, ok: one(), close: fail1003, protocol: protoBinary})
	}
	return cs
}

// 2: pings and pongs.
func cases2() []abCase {
	bin := []byte{0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff}
	p125 := strings.Repeat("\xfe", 125)
	ping := func(p string) []byte { return frame(ws.OpPing, true, []byte(p)) }
	cs := []abCase{
		{id: "2.1", steps: []abStep{send(ping(""))}, ok: one(pongEv("")), close: echoClose},
		{id: "2.2", steps: []abStep{send(ping("Hello, world!"))}, ok: one(pongEv("Hello, world!")), close: echoClose},
		{id: "2.3", steps: []abStep{send(ping(string(bin)))}, ok: one(pongEv(string(bin))), close: echoClose},
		{id: "2.4", steps: []abStep{send(ping(p125))}, ok: one(pongEv(p125)), close: echoClose},
		{id: "2.5", steps: []abStep{send(ping(p125 + "\xfe"))}, ok: one(), close: fail1002},
		{id: "2.6", steps: []abStep{sendChopped(ping(p125), 1)}, ok: one(pongEv(p125)), close: echoClose},
		{id: "2.7", steps: []abStep{send(frame(ws.OpPong, true, nil))}, ok: one(), close: echoClose},
		{id: "2.8", steps: []abStep{send(frame(ws.OpPong, true, []byte("unsolicited pong payload")))}, ok: one(), close: echoClose},
		{id: "2.9", steps: []abStep{send(frame(ws.OpPong, true, []byte("unsolicited pong payload"))), send(ping("ping payload"))},
			ok: one(pongEv("ping payload")), close: echoClose},
	}
	for _, id := range []string{"2.10", "2.11"} {
		var steps []abStep
		var want []abEvent
		for i := 0; i < 10; i++ {
			p := fmt.Sprintf("payload-%d", i)
			if id == "2.11" {
				steps = append(steps, sendChopped(ping(p), 1))
			} else {
				steps = append(steps, send(ping(p)))
			}
			want = append(want, pongEv(p))
		}
		cs = append(cs, abCase{id: id, steps: steps, ok: one(want...), close: echoClose})
	}
	return cs
}

// 3: reserved bits.
func cases3() []abCase {
	const hello = "Hello, world!"
	return []abCase{
		{id: "3.1", steps: []abStep{send(frameRsv(ws.OpText, true, 1, []byte(hello)))}, ok: one(), close: fail1002},
		{id: "3.2", steps: []abStep{send(text(hello)), send(frameRsv(ws.OpText, true, 2, []byte(hello))), send(frame(ws.OpPing, true, nil))},
			ok: one(msgEv(hello)), close: fail1002},
		{id: "3.3", steps: []abStep{send(append(append(text(hello), frameRsv(ws.OpText, true, 3, []byte(hello))...), frame(ws.OpPing, true, nil)...))},
			ok: one(msgEv(hello)), close: fail1002},
		{id: "3.4", steps: []abStep{sendChopped(append(append(text(hello), frameRsv(ws.OpText, true, 4, []byte(hello))...), frame(ws.OpPing, true, nil)...), 1)},
			ok: one(msgEv(hello)), close: fail1002},
		{id: "3.5", steps: []abStep{send(frameRsv(ws.OpBinary, true, 5, []byte{0, 1, 2, 3}))}, ok: one(), close: fail1002},
		{id: "3.6", steps: []abStep{send(frameRsv(ws.OpPing, true, 6, []byte(hello)))}, ok: one(), close: fail1002},
		{id: "3.7", steps: []abStep{send(frameRsv(ws.OpClose, true, 7, nil))}, ok: one(), close: fail1002},
	}
}

// 4: reserved opcodes.
func cases4() []abCase {
	const hello = "Hello, world!"
	var cs []abCase
	for i, op := range []ws.OpCode{3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf} {
		id := fmt.Sprintf("4.1.%d", i+1)
		if i >= 5 {
			id = fmt.Sprintf("4.2.%d", i-4)
		}
		var payload []byte
		if i%5 == 1 || i%5 == 3 {
			payload = []byte("reserved opcode payload")
		}
		tc := abCase{id: id, close: fail1002}
		if i%5 < 2 {
			tc.steps = []abStep{send(frame(op, true, payload))}
			tc.ok = one()
		} else {
			tc.steps = []abStep{send(text(hello)), send(frame(op, true, payload)), send(frame(ws.OpPing, true, nil))}
			tc.ok = one(msgEv(hello))
		}
		cs = append(cs, tc)
	}
	return cs
}

// 5: fragmentation.
func cases5() []abCase {
	f := func(op ws.OpCode, fin bool, p string) []byte { return frame(op, fin, []byte(p)) }
	const t, c = ws.OpText, ws.OpContinuation
	frag12 := "fragment1fragment2"
	cs := []abCase{
		{id: "5.1", steps: []abStep{send(f(ws.OpPing, false, "fragment1")), send(f(c, true, "fragment2"))}, ok: one(), close: fail1002},
		{id: "5.2", steps: []abStep{send(f(ws.OpPong, false, "fragment1")), send(f(c, true, "fragment2"))}, ok: one(), close: fail1002},
		{id: "5.3", steps: []abStep{send(f(t, false, "fragment1")), send(f(c, true, "fragment2"))}, ok: one(msgEv(frag12)), close: echoClose},
		{id: "5.4", steps: []abStep{send(f(t, false, "fragment1")), checkpoint("a"), send(f(c, true, "fragment2"))}, ok: one(timeoutEv("a"), msgEv(frag12)), close: echoClose},
		{id: "5.5", steps: []abStep{sendChopped(f(t, false, "fragment1"), 1), checkpoint("a"), sendChopped(f(c, true, "fragment2"), 1)}, ok: one(timeoutEv("a"), msgEv(frag12)), close: echoClose},
		{id: "5.6", steps: []abStep{send(f(t, false, "fragment1")), send(f(ws.OpPing, true, "ping payload")), send(f(c, true, "fragment2"))},
			ok: one(pongEv("ping payload"), msgEv(frag12)), close: echoClose},
		{id: "5.7", steps: []abStep{send(f(t, false, "fragment1")), checkpoint("a"), send(f(ws.OpPing, true, "ping payload")), checkpoint("b"), send(f(c, true, "fragment2"))},
			ok: one(timeoutEv("a"), pongEv("ping payload"), timeoutEv("b"), msgEv(frag12)), close: echoClose},
		{id: "5.8", steps: []abStep{sendChopped(f(t, false, "fragment1"), 1), sendChopped(f(ws.OpPing, true, "ping payload"), 1), sendChopped(f(c, true, "fragment2"), 1)},
			ok: one(pongEv("ping payload"), msgEv(frag12)), close: echoClose},
	}
	// 5.9-5.14: a continuation with nothing to continue (FIN set, then not).
	for i, fin := range []bool{true, true, true, false, false, false} {
		steps := []abStep{send(f(c, fin, "non-continuation payload")), send(f(t, false, "fragment1")), send(f(c, true, "fragment2"))}
		switch i % 3 {
		case 1:
			steps = []abStep{steps[0], checkpoint("a"), steps[1], steps[2]}
		case 2:
			for j := range steps {
				steps[j].chop = 1
			}
		}
		cs = append(cs, abCase{id: fmt.Sprintf("5.%d", 9+i), steps: steps, ok: one(), nonStrict: one(timeoutEv("a")), close: fail1002})
	}
	cs = append(cs,
		abCase{id: "5.15", steps: []abStep{send(bytes.Join([][]byte{f(t, false, "fragment1"), f(c, true, "fragment2"), f(c, false, "fragment3"), f(t, true, "fragment4")}, nil))},
			ok: one(msgEv(frag12)), close: fail1002},
		abCase{id: "5.16", steps: []abStep{send(bytes.Join([][]byte{f(c, false, "fragment1"), f(t, false, "fragment2"), f(c, true, "fragment3"), f(c, false, "fragment1"), f(t, false, "fragment2"), f(c, true, "fragment3")}, nil))},
			ok: one(), close: fail1002},
		abCase{id: "5.17", steps: []abStep{send(bytes.Join([][]byte{f(c, true, "fragment1"), f(t, false, "fragment2"), f(c, true, "fragment3"), f(c, true, "fragment1"), f(t, false, "fragment2"), f(c, true, "fragment3")}, nil))},
			ok: one(), close: fail1002},
		abCase{id: "5.18", steps: []abStep{send(append(f(t, false, "fragment1"), f(t, true, "fragment2")...))}, ok: one(), close: fail1002},
	)
	for _, id := range []string{"5.19", "5.20"} {
		steps := []abStep{
			send(f(t, false, "fragment1")), send(f(c, false, "fragment2")), send(f(ws.OpPing, true, "pongme 1!")),
			send(f(c, false, "fragment3")), checkpoint("a"), send(f(c, false, "fragment4")), send(f(ws.OpPing, true, "pongme 2!")),
			send(f(c, true, "fragment5")),
		}
		if id == "5.20" {
			for j := range steps {
				steps[j].chop = 1
			}
		}
		cs = append(cs, abCase{id: id, steps: steps,
			ok:    one(pongEv("pongme 1!"), timeoutEv("a"), pongEv("pongme 2!"), msgEv("fragment1fragment2fragment3fragment4fragment5")),
			close: echoClose})
	}
	return cs
}

// 6: UTF-8 handling: empty messages, valid text in fragments split inside
// code points, invalid text caught as early as it can be, and the vectors
// of Markus Kuhn's UTF-8 decoder test (6.5-6.23).
func cases6() []abCase {
	f := func(op ws.OpCode, fin bool, p string) []byte { return frame(op, fin, []byte(p)) }
	const t, c = ws.OpText, ws.OpContinuation
	cs := []abCase{
		{id: "6.1.1", steps: []abStep{send(f(t, true, ""))}, ok: one(msgEv("")), close: echoClose},
		{id: "6.1.2", steps: []abStep{send(f(t, false, "")), send(f(c, false, "")), send(f(c, true, ""))}, ok: one(msgEv("")), close: echoClose},
		{id: "6.1.3", steps: []abStep{send(f(t, false, "")), send(f(c, false, "middle frame payload")), send(f(c, true, ""))}, ok: one(msgEv("middle frame payload")), close: echoClose},
	}
	valid := "Hello-\u00b5@\u00df\u00f6\u00e4\u00fc\u00e0\u00e1-UTF-8!!"
	kosme := "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
	cs = append(cs,
		abCase{id: "6.2.1", steps: []abStep{send(f(t, true, valid))}, ok: one(msgEv(valid)), close: echoClose},
		abCase{id: "6.2.2", steps: fragmentsAt(valid, 7, 15), ok: one(msgEv(valid)), close: echoClose},
		abCase{id: "6.2.3", steps: fragmentsEvery(valid, 1), ok: one(msgEv(valid)), close: echoClose},
		abCase{id: "6.2.4", steps: fragmentsEvery(kosme, 1), ok: one(msgEv(kosme)), close: echoClose},
	)
	bad := kosme + "\xed\xa0\x80" + "edited"
	cs = append(cs,
		abCase{id: "6.3.1", steps: []abStep{send(f(t, true, bad))}, ok: one(), close: fail1007},
		abCase{id: "6.3.2", steps: fragmentsEvery(bad, 1), ok: one(), close: fail1007},
	)
	// 6.4: fail fast, on the fragment (6.4.1, 6.4.2) or the chunk of one
	// frame (6.4.3, 6.4.4) that makes the text invalid.
	for i, parts := range [][3]string{
		{kosme, "\xed\xa0\x80", "edited"},
		{kosme + "\xf4", "\x90", "\x80\x80edited"},
	} {
		cs = append(cs, abCase{id: fmt.Sprintf("6.4.%d", i+1),
			steps: []abStep{send(f(t, false, parts[0])), checkpoint("A"), send(f(c, false, parts[1])), failPoint("B"), send(f(c, true, parts[2])), failPoint("C")},
			ok:    one(timeoutEv("A")), nonStrict: one(timeoutEv("A"), timeoutEv("B")), close: fail1007})
		whole := f(t, true, parts[0]+parts[1]+parts[2])
		h := len(whole) - len(parts[0]+parts[1]+parts[2])
		a, b := h+len(parts[0]), h+len(parts[0])+len(parts[1])
		cs = append(cs, abCase{id: fmt.Sprintf("6.4.%d", i+3),
			steps: []abStep{send(whole[:a]), checkpoint("A"), send(whole[a:b]), failPoint("B"), send(whole[b:]), failPoint("C")},
			ok:    one(timeoutEv("A")), nonStrict: one(timeoutEv("A"), timeoutEv("B")), close: fail1007})
	}
	for i, group := range utf8Vectors() {
		for j, v := range group {
			id := fmt.Sprintf("6.%d.%d", i+5, j+1)
			if v.valid {
				cs = append(cs, abCase{id: id, steps: []abStep{send(f(t, true, v.s))}, ok: one(msgEv(v.s)), close: echoClose})
			} else {
				cs = append(cs, abCase{id: id, steps: []abStep{send(f(t, true, v.s))}, ok: one(), close: fail1007})
			}
		}
	}
	return cs
}

// fragmentsAt splits s into text fragments at the given byte offsets.
func fragmentsAt(s string, at ...int) []abStep {
	var steps []abStep
	prev := 0
	for i, cut := range append(at, len(s)) {
		op := ws.OpContinuation
		if i == 0 {
			op = ws.OpText
		}
		steps = append(steps, send(frame(op, cut == len(s), []byte(s[prev:cut]))))
		prev = cut
	}
	return steps
}

func fragmentsEvery(s string, n int) []abStep {
	var at []int
	for i := n; i < len(s); i += n {
		at = append(at, i)
	}
	return fragmentsAt(s, at...)
}

type utf8Vector struct {
	valid bool
	s     string
}

// utf8Vectors are the sequences of the testsuite's 6.5-6.23, from Markus
// Kuhn's "UTF-8 decoder capability and stress test", group by group.
func utf8Vectors() [][]utf8Vector {
	v := func(s string) utf8Vector { return utf8Vector{true, s} }
	x := func(s string) utf8Vector { return utf8Vector{false, s} }
	kosme := "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
	var prefixes []utf8Vector
	for i := 1; i <= len(kosme); i++ {
		prefixes = append(prefixes, utf8Vector{utf8.ValidString(kosme[:i]), kosme[:i]})
	}
	var cont strings.Builder
	for b := 0x80; b < 0xbf; b++ {
		cont.WriteByte(byte(b))
	}
	var lonely []utf8Vector
	for _, r := range [][2]int{{0xc0, 0xdf}, {0xe0, 0xef}, {0xf0, 0xf7}, {0xf8, 0xfb}, {0xfc, 0xfd}} {
		var s strings.Builder
		for b := r[0]; b < r[1]; b++ {
			s.WriteByte(byte(b))
			s.WriteByte(0x20)
		}
		lonely = append(lonely, x(s.String()))
	}
	missing := []string{"\xc0", "\xe0\x80", "\xf0\x80\x80", "\xf8\x80\x80\x80", "\xfc\x80\x80\x80\x80",
		"\xdf", "\xef\xbf", "\xf7\xbf\xbf", "\xfb\xbf\xbf\xbf", "\xfd\xbf\xbf\xbf\xbf"}
	var missingV []utf8Vector
	for _, s := range missing {
		missingV = append(missingV, x(s))
	}
	var nonchars []utf8Vector
	nonchars = append(nonchars, v("\xef\xbf\xbe"), v("\xef\xbf\xbf"))
	for _, z1 := range []byte{0xf0, 0xf1, 0xf2, 0xf3, 0xf4} {
		for _, z2 := range []byte{0x8f, 0x9f, 0xaf, 0xbf} {
			if z1 == 0xf4 && z2 != 0x8f {
				continue // above U+10FFFF
			}
			for _, z3 := range []byte{0xbe, 0xbf} {
				s := string([]byte{z1, z2, 0xbf, z3})
				if z1 == 0xf0 && z2 == 0x8f {
					continue // overlong
				}
				nonchars = append(nonchars, v(s))
			}
		}
	}
	return [][]utf8Vector{
		{v("hello\x24world"), v("hello\xc2\xa2world"), v("hello\xe2\x82\xacworld"), v("hello\xf0\xa4\xad\xa2world"), v(kosme)},
		prefixes,
		{v("\x00"), v("\xc2\x80"), v("\xe0\xa0\x80"), v("\xf0\x90\x80\x80")},
		{x("\xf8\x88\x80\x80\x80"), x("\xfc\x84\x80\x80\x80\x80")},
		{v("\x7f"), v("\xdf\xbf"), v("\xef\xbf\xbf"), v("\xf4\x8f\xbf\xbf")},
		{x("\xf7\xbf\xbf\xbf"), x("\xfb\xbf\xbf\xbf\xbf"), x("\xfd\xbf\xbf\xbf\xbf\xbf")},
		{v("\xed\x9f\xbf"), v("\xee\x80\x80"), v("\xef\xbf\xbd"), v("\xf4\x8f\xbf\xbf"), x("\xf4\x90\x80\x80")},
		{x("\x80"), x("\xbf"), x("\x80\xbf"), x("\x80\xbf\x80"), x("\x80\xbf\x80\xbf"), x("\x80\xbf\x80\xbf\x80"), x("\x80\xbf\x80\xbf\x80\xbf"), x(cont.String())},
		lonely,
		missingV,
		{x(strings.Join(missing, ""))},
		{x("\xfe"), x("\xff"), x("\xfe\xfe\xff\xff")},
		{x("\xc0\xaf"), x("\xe0\x80\xaf"), x("\xf0\x80\x80\xaf"), x("\xf8\x80\x80\x80\xaf"), x("\xfc\x80\x80\x80\x80\xaf")},
		{x("\xc1\xbf"), x("\xe0\x9f\xbf"), x("\xf0\x8f\xbf\xbf"), x("\xf8\x87\xbf\xbf\xbf"), x("\xfc\x83\xbf\xbf\xbf\xbf")},
		{x("\xc0\x80"), x("\xe0\x80\x80"), x("\xf0\x80\x80\x80"), x("\xf8\x80\x80\x80\x80"), x("\xfc\x80\x80\x80\x80\x80")},
		{x("\xed\xa0\x80"), x("\xed\xad\xbf"), x("\xed\xae\x80"), x("\xed\xaf\xbf"), x("\xed\xb0\x80"), x("\xed\xbe\x80"), x("\xed\xbf\xbf")},
		{x("\xed\xa0\x80\xed\xb0\x80"), x("\xed\xa0\x80\xed\xbf\xbf"), x("\xed\xad\xbf\xed\xb0\x80"), x("\xed\xad\xbf\xed\xbf\xbf"),
			x("\xed\xae\x80\xed\xb0\x80"), x("\xed\xae\x80\xed\xbf\xbf"), x("\xed\xaf\xbf\xed\xb0\x80"), x("\xed\xaf\xbf\xed\xbf\xbf")},
		nonchars,
		{v("\xef\xbf\xb9"), v("\xef\xbf\xba"), v("\xef\xbf\xbb"), v("\xef\xbf\xbc"), v("\xef\xbf\xbd"), v("\xef\xbf\xbe"), v("\xef\xbf\xbf")},
	}
}

// 7: the closing handshake.
func cases7() []abCase {
	f := func(op ws.OpCode, fin bool, p string) []byte { return frame(op, fin, []byte(p)) }
	const hello = "Hello World!"
	big := strings.Repeat("*", 60_000) // the testsuite's 256 KiB is over our limit
	cs := []abCase{
		{id: "7.1.1", steps: []abStep{send(text(hello))}, ok: one(msgEv(hello)), close: echoClose},
		{id: "7.1.2", steps: []abStep{sendClose(1000, nil), sendClose(1000, nil)}, ok: one(), close: echoClose},
		{id: "7.1.3", steps: []abStep{sendClose(1000, nil), send(f(ws.OpPing, true, "ping"))}, ok: one(), close: echoClose},
		{id: "7.1.4", steps: []abStep{sendClose(1000, nil), send(text(hello))}, ok: one(), close: echoClose},
		{id: "7.1.5", steps: []abStep{send(f(ws.OpText, false, "fragment1")), sendClose(1000, nil), send(f(ws.OpContinuation, true, "fragment2"))}, ok: one(), close: echoClose},
		{id: "7.1.6", steps: []abStep{{data: append(append(text(big), closeFrameBytes(1000, nil)...), f(ws.OpPing, true, "ping")...), close: true}},
			ok: [][]abEvent{{msgEv(big)}, {}}, close: echoClose},
		{id: "7.3.1", steps: []abStep{sendRawClose(nil)}, ok: one(), close: echoClose},
		{id: "7.3.2", steps: []abStep{sendRawClose([]byte{0x03})}, ok: one(), close: abClose{byMe: true, codes: []ws.StatusCode{ws.StatusProtocolError}}},
		{id: "7.3.3", steps: []abStep{sendClose(1000, nil)}, ok: one(), close: echoClose},
		{id: "7.3.4", steps: []abStep{sendClose(1000, []byte(hello))}, ok: one(), close: echoClose},
		{id: "7.3.5", steps: []abStep{sendClose(1000, []byte(strings.Repeat("*", 123)))}, ok: one(), close: echoClose},
		{id: "7.3.6", steps: []abStep{sendClose(1000, []byte(strings.Repeat("*", 124)))}, ok: one(), close: abClose{byMe: true, codes: []ws.StatusCode{ws.StatusProtocolError}}},
		{id: "7.5.1", steps: []abStep{sendClose(1000, []byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64"))}, ok: one(),
			close: abClose{byMe: true, codes: []ws.StatusCode{ws.StatusInvalidFramePayloadData}}},
	}
	for i, code := range []ws.StatusCode{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999} {
		cs = append(cs, abCase{id: fmt.Sprintf("7.7.%d", i+1), steps: []abStep{sendClose(code, nil)}, ok: one(),
			close: abClose{byMe: true, codes: []ws.StatusCode{ws.StatusNormalClosure, code}, clean: true}})
	}
	for i, code := range []ws.StatusCode{0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999} {
		st := sendClose(code, nil)
		if code == 0 {
			st = sendRawClose([]byte{0, 0})
		}
		cs = append(cs, abCase{id: fmt.Sprintf("7.9.%d", i+1), steps: []abStep{st}, ok: one(),
			close: abClose{byMe: true, codes: []ws.StatusCode{ws.StatusProtocolError}}})
	}
	return cs
}

// 9: limits and throughput, bounded: 64 KiB instead of 1-16 MiB, 200
// round trips instead of 1000.
func cases9() []abCase {
	const max = 65536
	var cs []abCase
	p := strings.Repeat("*", max)
	cs = append(cs,
		abCase{id: "9.1.1", steps: []abStep{send(text(p))}, ok: one(msgEv(p)), close: echoClose, echoOnly: true},
		abCase{id: "9.1.2", steps: []abStep{send(text(p + "*"))}, ok: one(), close: fail1009, protocol: protoSize},
		abCase{id: "9.1.3", steps: []abStep{send(text(strings.Repeat("*", 4*max)))}, ok: one(), close: fail1009, protocol: protoSize},
		abCase{id: "9.2.1", steps: []abStep{send(frame(ws.OpBinary, true, []byte(p)))}, ok: one(), close: fail1003, protocol: protoBinary},
	)
	for i, n := range []int{64, 256, 1024, 4096, 16384, 65536} {
		var buf []byte
		for off := 0; off < max; off += n {
			op := ws.OpContinuation
			if off == 0 {
				op = ws.OpText
			}
			buf = append(buf, frame(op, off+n >= max, []byte(p[off:off+n]))...)
		}
		cs = append(cs, abCase{id: fmt.Sprintf("9.3.%d", i+1), steps: []abStep{send(buf)}, ok: one(msgEv(p)), close: echoClose, echoOnly: true})
		cs = append(cs, abCase{id: fmt.Sprintf("9.4.%d", i+1), steps: []abStep{send(frame(ws.OpBinary, false, []byte(p[:n])))}, ok: one(), close: fail1003, protocol: protoBinary})
	}
	for i, n := range []int{64, 128, 256, 512, 1024, 2048} {
		cs = append(cs, abCase{id: fmt.Sprintf("9.5.%d", i+1), steps: []abStep{sendChopped(text(p), n)}, ok: one(msgEv(p)), close: echoClose, echoOnly: true})
		cs = append(cs, abCase{id: fmt.Sprintf("9.6.%d", i+1), steps: []abStep{sendChopped(frame(ws.OpBinary, true, []byte(p)), n)}, ok: one(), close: fail1003, protocol: protoBinary})
	}
	for i, n := range []int{0, 16, 64, 256, 1024, 4096} {
		msg := strings.Repeat("*", n)
		var steps []abStep
		var want []abEvent
		for j := 0; j < 200; j++ {
			steps = append(steps, send(text(msg)))
			want = append(want, msgEv(msg))
		}
		cs = append(cs, abCase{id: fmt.Sprintf("9.7.%d", i+1), steps: steps, ok: one(want...), close: echoClose, echoOnly: true})
		cs = append(cs, abCase{id: fmt.Sprintf("9.8.%d", i+1), steps: []abStep{send(frame(ws.OpBinary, true, []byte(msg)))}, ok: one(), close: fail1003, protocol: protoBinary})
	}
	return cs
}

// casesIssue13 are the deviations a new client found (issue 13) that the
// testsuite's own cases do not pin down.
func casesIssue13() []abCase {
	const max = 65536
	head, tail := strings.Repeat("a", max-100), strings.Repeat("b", 100)
	half := strings.Repeat("a", max/2)
	ping := strings.Repeat("p", 125)
	return []abCase{
		// A legal message of exactly the limit with a ping between its
		// fragments, where fragment and ping together pass the limit: the
		// ping does not count toward it.
		{id: "x.1", steps: []abStep{send(frame(ws.OpText, false, []byte(head))), send(frame(ws.OpPing, true, []byte(ping))), send(frame(ws.OpContinuation, true, []byte(tail)))},
			ok: one(pongEv(ping), msgEv(head+tail)), close: echoClose},
		// One byte over, in fragments: 1009.
		{id: "x.2", steps: []abStep{send(frame(ws.OpText, false, []byte(half))), send(frame(ws.OpContinuation, true, []byte(half+"a")))},
			ok: one(), close: fail1009, protocol: protoSize},
	}
}
