package logs

import (
	"strings"
	"testing"
)

func TestFilterPatterns(t *testing.T) {
	const (
		plain   = `[ERROR] broker 2: fetch from 127.16.0.5:9093 timed out after 30s`
		warn    = `WARN retrying metadata request (attempt 3)`
		jsonMsg = `{"time":"2026-01-02T15:04:05Z","level":"ERROR","msg":"replica fetch failed","broker":2,"lag":1500,"tls":true,"peer":{"id":5,"rack":"use1-az2"},"topics":["orders","payments"],"cause":null}`
	)
	tests := []struct {
		pattern string
		message string
		want    bool
	}{
		{"", plain, true},
		{"ERROR", plain, true},
		{"ERROR", "ERRORS happened", false},
		{"ERROR", "UNERROR", false},
		{"ERROR timed", plain, true},
		{"ERROR missing", plain, false},
		{"?ERROR ?WARN", warn, true},
		{"?ERROR ?FATAL", warn, false},
		{"ERROR -retrying", plain, true},
		{"WARN -retrying", warn, false},
		{`"timed out"`, plain, true},
		{`"out timed"`, plain, false},
		{"127.16.0.5:9093", plain, true},
		{"%tim[a-z]+ out%", plain, true},
		{"%^WARN%", warn, true},
		{"%^WARN%", plain, false},
		{"fetch", jsonMsg, true}, // terms search JSON events as text
		{`{ $.level = "ERROR" }`, jsonMsg, true},
		{`{ $.level = ERROR }`, jsonMsg, true},
		{`{ $.level = "WARN" }`, jsonMsg, false},
		{`{ $.level != "WARN" }`, jsonMsg, true},
		{`{ $.msg = "replica*" }`, jsonMsg, true},
		{`{ $.msg = "*fetch*" }`, jsonMsg, true},
		{`{ $.msg = "fetch*" }`, jsonMsg, false},
		{`{ $.lag > 1000 }`, jsonMsg, true},
		{`{ $.lag <= 1000 }`, jsonMsg, false},
		{`{ $.broker = 2 }`, jsonMsg, true},
		{`{ $.peer.id >= 5 && $.peer.rack = "use1-az2" }`, jsonMsg, true},
		{`{ $.peer.id > 5 || $.topics[1] = "payments" }`, jsonMsg, true},
		{`{ ($.peer.id > 5 || $.topics[0] = "x") && $.tls IS TRUE }`, jsonMsg, false},
		{`{ $.tls IS TRUE }`, jsonMsg, true},
		{`{ $.tls IS FALSE }`, jsonMsg, false},
		{`{ $.cause IS NULL }`, jsonMsg, true},
		{`{ $.missing NOT EXISTS }`, jsonMsg, true},
		{`{ $.peer EXISTS }`, jsonMsg, true},
		{`{ $.topics[5] EXISTS }`, jsonMsg, false},
		{`{ $.level = "ERROR" }`, plain, false}, // not JSON
		{`{ $.lag > 1000 }`, `{"lag":"high"}`, false},
	}
	for _, tt := range tests {
		m, err := compileFilter(tt.pattern)
		if err != nil {
			t.Errorf("compileFilter(%q): %v", tt.pattern, err)
			continue
		}
		if got := m(tt.message); got != tt.want {
			t.Errorf("%q on %.40q = %v, want %v", tt.pattern, tt.message, got, tt.want)
		}
	}
}

func TestFilterPatternErrors(t *testing.T) {
	for _, pattern := range []string{
		`"unterminated`, `%unterminated`, `%a(b)%`, `%[%`, `?`, `-`,
		`{ $.a = "x" `, `{ a = 1 }`, `{ $.a < "x" }`, `{ $.a IS MAYBE }`, `{ $.a }`, `{ $.a = }`, `{ ($.a = 1 }`, `{ $. = 1 }`, `{ $.a[x] = 1 }`,
		`[ip, user]`,
	} {
		if _, err := compileFilter(pattern); err == nil {
			t.Errorf("compileFilter(%q) accepted a bad pattern", pattern)
		}
	}
}

// FuzzFilterPattern checks that no pattern or message crashes the compiler or matcher, and that
// the empty pattern and every word of an ASCII message match that message.
func FuzzFilterPattern(f *testing.F) {
	for _, seed := range []string{"ERROR", "?a ?b -c", `"x y"`, "%a+%", `{ $.a = "b*" }`, `{ ($.a > 1) && $.b IS TRUE || $.c[0] NOT EXISTS }`, "{", "[", "%"} {
		f.Add(seed, `{"a":2,"b":true,"c":[1]} ERROR x y`)
	}
	f.Fuzz(func(t *testing.T, pattern, message string) {
		if m, err := compileFilter(pattern); err == nil {
			m(message)
		}
		all, err := compileFilter("")
		if err != nil || !all(message) {
			t.Fatal("the empty pattern must match everything")
		}
		if strings.IndexFunc(message, func(r rune) bool { return r > 0x7f }) >= 0 {
			return // word boundaries next to non-ASCII bytes are not letters' business here
		}
		for _, word := range strings.FieldsFunc(message, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') }) {
			m, err := compileFilter(word)
			if err != nil {
				t.Fatalf("the word %q of the message is not a pattern: %v", word, err)
			}
			if !m(message) {
				t.Fatalf("the word %q does not match its own message %q", word, message)
			}
		}
	})
}
