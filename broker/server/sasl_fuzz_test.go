package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzSASLExchange drives a SASL_SSL listener's authentication phase with
// arbitrary input: a SaslHandshake (v0, whose tokens follow as raw frames,
// or v1, whose tokens are SaslAuthenticate requests, or none) naming a fuzzed
// mechanism, then up to two fuzzed tokens (an empty one is not sent), then
// a Metadata request. Whatever
// they are, the broker must not crash, must never serve the connection as
// authenticated (nobody proves a password without it), and must go on
// logging real users in on other connections. The parsers below it are
// fuzzed on their own (FuzzClientFirst, FuzzClientFinal,
// FuzzParseInitialResponse); this covers the state machine around them:
// framing, the order of steps, and what a refusal leaves behind.
func FuzzSASLExchange(f *testing.F) {
	f.Add(uint8(1), "SCRAM-SHA-512", []byte("n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL"), []byte("c=biws,r=fyko+d2lbbFgONRv9qkxdawL,p=AAAA"), uint8(2))
	f.Add(uint8(0), "SCRAM-SHA-256", []byte("n,,n=alice,r=abc"), []byte("c=biws,r=abc,p=dGVzdA=="), uint8(0))
	f.Add(uint8(1), "SCRAM-SHA-256", []byte("n,,n=mallory,r=x"), []byte{}, uint8(1))
	f.Add(uint8(1), "OAUTHBEARER", []byte("n,,\x01auth=Bearer x\x01\x01"), []byte{0x01}, uint8(2))
	f.Add(uint8(1), "GSSAPI", []byte{}, []byte{}, uint8(0))
	f.Add(uint8(1), "SCRAM-SHA-512", []byte{}, []byte{}, uint8(0))
	f.Add(uint8(2), "", []byte{}, []byte{}, uint8(0))
	f.Add(uint8(2), "", []byte("n,,n=alice,r=abc"), []byte{}, uint8(2))
	f.Add(uint8(1), "SCRAM-SHA-512", []byte("n,,n=alice,r=abc"), []byte{}, uint8(1))
	f.Add(uint8(0), "SCRAM-SHA-512", []byte("n,,n=alice,r=abc"), []byte{}, uint8(1))
	f.Add(uint8(0), "SCRAM-SHA-512", []byte{0xff, 0xff, 0xff, 0xff}, []byte("n,,n=alice,r=abc"), uint8(1))
	f.Add(uint8(1), "", []byte("p,,n=alice,r=abc"), []byte("n,,n=alice,r=abc"), uint8(0))

	s, e, _ := startSCRAMServer(f, nil)
	const metadataCorr = 0x00ab0d1e
	f.Fuzz(func(t *testing.T, handshakeVersion uint8, mechanism string, first, second []byte, authVersion uint8) {
		c := saslConn(t, s, e, "CLIENT_SASL_SCRAM")
		// Handshake v0, v1, or none (the tokens then come as
		// SaslAuthenticate requests nobody asked for).
		var exchange [][]byte
		hs := kmsg.NewPtrSASLHandshakeRequest()
		hs.Version, hs.Mechanism = int16(handshakeVersion%3), mechanism
		raw := hs.Version == 0
		what := fmt.Sprintf("no handshake, tokens %q and %q", first, second)
		if hs.Version < 2 {
			exchange = append(exchange, encodeRequest(hs, 1))
			what = fmt.Sprintf("handshake v%d %q, tokens %q and %q", hs.Version, mechanism, first, second)
		}
		for i, token := range [][]byte{first, second} {
			if len(token) == 0 {
				continue // fewer steps: the Metadata request comes mid-exchange
			}
			if raw {
				exchange = append(exchange, append(binary.BigEndian.AppendUint32(nil, uint32(len(token))), token...))
				continue
			}
			auth := kmsg.NewPtrSASLAuthenticateRequest()
			auth.Version, auth.SASLAuthBytes = int16(authVersion%3), token
			exchange = append(exchange, encodeRequest(auth, int32(2+i)))
		}
		exchange = append(exchange, encodeRequest(kmsg.NewPtrMetadataRequest(), metadataCorr))
		for i, b := range exchange {
			_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.nc.Write(b); err != nil {
				break // refused and closed: what follows is not read
			}
			// Every step is answered (or the connection closed) before
			// the broker reads the next: it reads one step at a time.
			frame, err := c.readFrame(5 * time.Second)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("step %d of %s: no answer and not closed", i, what)
			}
			if err != nil {
				break // closed after a refusal
			}
			if len(frame) >= 4 && binary.BigEndian.Uint32(frame) == metadataCorr {
				t.Fatalf("metadata served without authentication after %s", what)
			}
		}
		c.nc.Close()

		good := saslConn(t, s, e, "CLIENT_SASL_SCRAM")
		good.scramLogin("SCRAM-SHA-256", "alice", "alice-secret")
		md := kmsg.NewPtrMetadataResponse()
		good.recv(md, good.send(kmsg.NewPtrMetadataRequest()))
		if len(md.Brokers) != 1 {
			t.Fatalf("metadata after the fuzzed exchange: %+v", md.Brokers)
		}
		good.nc.Close()
	})
}

// encodeRequest frames req with correlation id corr, as a client sends it.
func encodeRequest(req kmsg.Request, corr int32) []byte {
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID("fuzz")).AppendRequest(nil, req, corr)
}
