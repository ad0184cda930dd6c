package txn

import (
	"time"
	"unicode/utf16"
)

func utf16Encode(s string) []uint16 { return utf16.Encode([]rune(s)) }

// eventually bounds the tests' waits for a condition to hold; they poll,
// so a passing test does not wait it out, and a loaded machine (CI runs
// many test binaries at once) does not fail them.
const eventually = 30 * time.Second
