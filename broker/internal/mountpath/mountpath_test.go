package mountpath

import "testing"

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/var/lib/tributary`: "/var/lib/tributary",
		`/mnt/my\040data`:    "/mnt/my data",
		`/a\134b`:            `/a\b`,
		`/trailing\04`:       `/trailing\04`,
		`/ends\040`:          "/ends ", // an escape that ends the path
		`/not\999octal`:      `/not\999octal`,
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}
