package metrics

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"
)

// getFrom fetches url with the connection's source address bound to src
// (any 127.0.0.0/8 address is the host's own on Linux).
func getFrom(src, url string) (string, error) {
	c := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: (&net.Dialer{
			LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)},
			Timeout:   5 * time.Second,
		}).DialContext, DisableKeepAlives: true},
	}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestAllowSources(t *testing.T) {
	tests := []struct {
		name    string
		allowed []string
		listen  string
		src     string
		ok      bool
	}{
		{"inside a block", []string{"127.0.5.0/24"}, "127.0.0.1", "127.0.5.9", true},
		{"outside every block", []string{"127.0.5.0/24", "10.0.0.0/8"}, "127.0.0.1", "127.0.6.9", false},
		{"the host itself", []string{"10.0.0.0/8"}, "127.0.7.1", "127.0.7.1", true},
		{"no blocks: any source", nil, "127.0.0.1", "127.0.6.9", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var allowed []netip.Prefix
			for _, c := range tt.allowed {
				allowed = append(allowed, netip.MustParsePrefix(c))
			}
			h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "scraped") })
			hs, err := ListenHTTPFrom(tt.listen+":0", allowed, h, quietLogger())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = hs.Shutdown(t.Context()) })
			body, err := getFrom(tt.src, "http://"+hs.Addr().String()+"/")
			if tt.ok && (err != nil || body != "scraped") {
				t.Fatalf("from %s: %q, %v; want the answer", tt.src, body, err)
			}
			if !tt.ok && err == nil {
				t.Fatalf("from %s: answered %q; want the connection refused", tt.src, body)
			}
		})
	}
}
