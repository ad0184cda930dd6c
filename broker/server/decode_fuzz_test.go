package server

import (
	"encoding/binary"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzDecodeRequest feeds arbitrary frames to the request decoder. The
// invariants: it never panics; it either fails (the connection is closed)
// or returns a request for a served API key at a served version (or a
// too-new ApiVersions with no body); and a request it accepts re-encodes
// and decodes again to the same key and version.
func FuzzDecodeRequest(f *testing.F) {
	formatter := kmsg.NewRequestFormatter(kmsg.FormatterClientID("fuzz"))
	seed := func(req kmsg.Request) {
		b := formatter.AppendRequest(nil, req, 1)
		f.Add(b[4:])
	}
	for _, a := range SupportedAPIs() {
		for _, v := range []int16{a.MinVersion, a.MaxVersion} {
			req := kmsg.RequestForKey(a.ApiKey)
			req.SetVersion(v)
			seed(req)
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0, 18, 0, 99, 0, 0, 0, 1, 0, 0})
	f.Add(binary.BigEndian.AppendUint32(nil, 0xffffffff))

	f.Fuzz(func(t *testing.T, frame []byte) {
		req, err := decodeRequest(frame)
		if err != nil {
			if req != nil {
				t.Fatal("request returned with an error")
			}
			return
		}
		a, ok := apiByKey(req.key)
		if !ok {
			t.Fatalf("accepted unknown key %d", req.key)
		}
		if req.kreq == nil {
			if req.key != apiVersionsKey || req.version <= a.max {
				t.Fatalf("no body for key %d v%d", req.key, req.version)
			}
			return
		}
		if req.version < a.min || req.version > a.max {
			t.Fatalf("accepted %s v%d outside %d-%d", kmsg.NameForKey(req.key), req.version, a.min, a.max)
		}
		again, err := decodeRequest(formatter.AppendRequest(nil, req.kreq, req.corr)[4:])
		if err != nil {
			t.Fatalf("re-encoded request does not decode: %v", err)
		}
		if again.key != req.key || again.version != req.version {
			t.Fatalf("round trip changed %d v%d to %d v%d", req.key, req.version, again.key, again.version)
		}
	})
}

// FuzzConnection writes arbitrary bytes on a live connection; whatever they
// are, the broker must keep answering other connections. The seeds hold a
// request of every served API at its oldest and newest version, so that
// mutations reach each handler with malformed but decodable input, not
// only the decoder.
func FuzzConnection(f *testing.F) {
	formatter := kmsg.NewRequestFormatter(kmsg.FormatterClientID("fuzz"))
	meta := kmsg.NewPtrMetadataRequest()
	meta.Version = 1
	f.Add(formatter.AppendRequest(nil, meta, 1))
	for _, a := range SupportedAPIs() {
		for _, v := range []int16{a.MinVersion, a.MaxVersion} {
			req := kmsg.RequestForKey(a.ApiKey)
			req.SetVersion(v)
			f.Add(formatter.AppendRequest(nil, req, 1))
		}
	}
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{0, 0, 0, 8, 0, 18, 0, 3, 0, 0, 0, 1})
	f.Add(binary.BigEndian.AppendUint32(nil, 0x7fffffff))

	s := startServer(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		bad := dial(t, s)
		bad.write(data)
		bad.nc.Close()
		req := kmsg.NewPtrMetadataRequest()
		req.Version = 1
		resp := roundTrip[*kmsg.MetadataResponse](t, s, req)
		if len(resp.Brokers) != 1 {
			t.Fatalf("metadata after %q: %+v", data, resp.Brokers)
		}
	})
}
