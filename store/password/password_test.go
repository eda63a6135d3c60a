package password

import (
	"errors"
	"testing"
)

func TestHashCheck(t *testing.T) {
	h, err := Hash("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(h, "correct horse"); err != nil {
		t.Fatalf("right password: %v", err)
	}
	for _, c := range []struct{ hash, pw string }{
		{h, "wrong horse"},
		{"", "x"},          // no account: the dummy never matches
		{"", "x\x00never"}, // not even its own input
		{"$bcrypt$junk", "correct horse"},
		{"$argon2id$v=19$m=99999999,t=1,p=1$AAAA$AAAA", "correct horse"},
	} {
		if err := Check(c.hash, c.pw); !errors.Is(err, ErrMismatch) {
			t.Errorf("Check(%q, %q) = %v, want ErrMismatch", c.hash, c.pw, err)
		}
	}
}
