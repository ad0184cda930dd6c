package scram

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sasl"
	franzscram "github.com/twmb/franz-go/pkg/sasl/scram"

	bsasl "github.com/tributary/tributary/broker/security/sasl"
)

// users is an in-memory credential store.
type users map[string]map[Mechanism]Credential

func (u users) ScramCredential(user string, m Mechanism) (Credential, bool) {
	c, ok := u[user][m]
	return c, ok
}

func (u users) add(t testing.TB, user, password string, mechs ...Mechanism) {
	t.Helper()
	for _, m := range mechs {
		c, err := NewCredential(m, password, MinIterations)
		if err != nil {
			t.Fatal(err)
		}
		if u[user] == nil {
			u[user] = map[Mechanism]Credential{}
		}
		u[user][m] = c
	}
}

func franzMech(m Mechanism, a franzscram.Auth) sasl.Mechanism {
	if m == SHA512 {
		return a.AsSha512Mechanism()
	}
	return a.AsSha256Mechanism()
}

// converse drives franz-go's SCRAM client against a server session the way
// a broker connection does. It returns the server's error, or the client's
// when the server accepted but the client refused the server's proof.
func converse(t *testing.T, srv *Server, client sasl.Mechanism) (bsasl.Result, error) {
	t.Helper()
	ctx := context.Background()
	cs, msg, err := client.Authenticate(ctx, "127.0.0.1:9096")
	if err != nil {
		t.Fatalf("client start: %v", err)
	}
	ss := srv.NewSession()
	for round := 0; round < 4; round++ {
		challenge, done, err := ss.Step(ctx, msg)
		if err != nil {
			return bsasl.Result{}, err
		}
		clientDone, next, cerr := cs.Challenge(challenge)
		if cerr != nil {
			return bsasl.Result{}, cerr
		}
		if done {
			if !clientDone {
				t.Fatal("server done, client not")
			}
			return ss.Result(), nil
		}
		msg = next
	}
	t.Fatal("the exchange did not end in 4 rounds")
	return bsasl.Result{}, nil
}

func TestFranzGoClientAgainstServer(t *testing.T) {
	store := users{}
	store.add(t, "alice", "alice-secret", SHA256, SHA512)
	store.add(t, "we,ird=name", "p,=w", SHA256, SHA512)
	store.add(t, "only256", "pw", SHA256)
	for _, m := range []Mechanism{SHA256, SHA512} {
		srv, err := NewServer(m, store)
		if err != nil {
			t.Fatal(err)
		}
		if srv.Name() != m.String() {
			t.Fatalf("Name %s", srv.Name())
		}
		tests := []struct {
			name      string
			auth      franzscram.Auth
			principal string
			err       error
		}{
			{"valid", franzscram.Auth{User: "alice", Pass: "alice-secret"}, "User:alice", nil},
			{"escaped name", franzscram.Auth{User: "we,ird=name", Pass: "p,=w"}, "User:we,ird=name", nil},
			{"authzid of the user", franzscram.Auth{User: "alice", Pass: "alice-secret", Zid: "alice"}, "User:alice", nil},
			{"wrong password", franzscram.Auth{User: "alice", Pass: "guess"}, "", ErrBadProof},
			{"unknown user", franzscram.Auth{User: "mallory", Pass: "alice-secret"}, "", ErrUnknownUser},
			{"authzid of another user", franzscram.Auth{User: "alice", Pass: "alice-secret", Zid: "bob"}, "", ErrAuthzid},
			{"authzid of another user, wrong password", franzscram.Auth{User: "alice", Pass: "x", Zid: "bob"}, "", ErrBadProof},
			{"delegation token", franzscram.Auth{User: "alice", Pass: "alice-secret", IsToken: true}, "", ErrUnsupported},
		}
		if m == SHA512 {
			tests = append(tests, struct {
				name      string
				auth      franzscram.Auth
				principal string
				err       error
			}{"no credential for this mechanism", franzscram.Auth{User: "only256", Pass: "pw"}, "", ErrUnknownUser})
		}
		for _, tt := range tests {
			t.Run(m.String()+"/"+tt.name, func(t *testing.T) {
				res, err := converse(t, srv, franzMech(m, tt.auth))
				if !errors.Is(err, tt.err) {
					t.Fatalf("err %v, want %v", err, tt.err)
				}
				if res.Principal != tt.principal || res.SessionLifetime != 0 {
					t.Fatalf("result %+v, want principal %q", res, tt.principal)
				}
				if err != nil && strings.Contains(err.Error(), tt.auth.Pass) {
					t.Fatalf("the error quotes the password: %v", err)
				}
			})
		}
	}
}

// TestFailuresLookAlikeOnTheWire: a prober cannot tell an unknown user from
// a wrong password, neither from the server-first message nor from the
// failure message.
func TestFailuresLookAlikeOnTheWire(t *testing.T) {
	store := users{}
	store.add(t, "alice", "secret", SHA512)
	srv, err := NewServer(SHA512, store)
	if err != nil {
		t.Fatal(err)
	}
	first := func(user string) string {
		t.Helper()
		out, _, err := srv.NewSession().Step(context.Background(), []byte("n,,n="+user+",r=abc"))
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	shape := func(serverFirst string) (saltLen int, iters string) {
		t.Helper()
		parts := strings.Split(serverFirst, ",")
		if len(parts) != 3 || !strings.HasPrefix(parts[0], "r=abc") {
			t.Fatalf("server-first %q", serverFirst)
		}
		salt, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(parts[1], "s="))
		if err != nil {
			t.Fatal(err)
		}
		return len(salt), parts[2]
	}
	knownSalt, _ := shape(first("alice"))
	unknownSalt, unknownIters := shape(first("mallory"))
	if knownSalt != unknownSalt || unknownIters != "i=8192" {
		t.Fatalf("unknown user: salt %d bytes, %s; known: %d bytes", unknownSalt, unknownIters, knownSalt)
	}
	a, b := first("mallory"), first("mallory")
	if strings.Split(a, ",")[1] != strings.Split(b, ",")[1] {
		t.Fatal("an unknown user's salt changes between attempts; a real user's does not")
	}
	if strings.Split(first("mallory"), ",")[1] == strings.Split(first("trudy"), ",")[1] {
		t.Fatal("two unknown users share a salt")
	}
	_, errUnknown := converse(t, srv, franzMech(SHA512, franzscram.Auth{User: "mallory", Pass: "x"}))
	_, errBad := converse(t, srv, franzMech(SHA512, franzscram.Auth{User: "alice", Pass: "x"}))
	_, errAuthz := converse(t, srv, franzMech(SHA512, franzscram.Auth{User: "alice", Pass: "secret", Zid: "root"}))
	want := "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"
	for _, err := range []error{errUnknown, errBad, errAuthz} {
		if got := bsasl.ClientMessage(err); got != want {
			t.Fatalf("wire message %q for %v, want %q", got, err, want)
		}
	}
	if errUnknown.Error() == errBad.Error() {
		t.Fatal("the log cannot tell an unknown user from a bad password")
	}
}

// TestRFC7677Example replays the SCRAM-SHA-256 exchange of RFC 7677
// section 3 byte for byte.
func TestRFC7677Example(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	salted, err := SaltedPassword(SHA256, "pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	cred, err := CredentialFromSaltedPassword(SHA256, salt, salted, 4096)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(SHA256, users{"user": {SHA256: cred}})
	if err != nil {
		t.Fatal(err)
	}
	srv.serverNonce = func() (string, error) { return "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", nil }
	ss := srv.NewSession()
	ctx := context.Background()
	out, done, err := ss.Step(ctx, []byte("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"))
	if err != nil || done || string(out) != "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096" {
		t.Fatalf("server-first %q %v %v", out, done, err)
	}
	out, done, err = ss.Step(ctx, []byte("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="))
	if err != nil || !done || string(out) != "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=" {
		t.Fatalf("server-final %q %v %v", out, done, err)
	}
	if ss.Result().Principal != "User:user" {
		t.Fatalf("principal %s", ss.Result().Principal)
	}
}

func TestSessionRefusals(t *testing.T) {
	store := users{}
	store.add(t, "alice", "secret", SHA256)
	srv, err := NewServer(SHA256, store)
	if err != nil {
		t.Fatal(err)
	}
	srv.serverNonce = func() (string, error) { return "SRV", nil }
	const first = "n,,n=alice,r=CLI"
	tests := []struct {
		name          string
		first, second string
		want          error
	}{
		{"channel binding requested", "p=tls-unique,,n=alice,r=CLI", "", ErrUnsupported},
		{"mandatory extension", "n,,m=x,n=alice,r=CLI", "", ErrUnsupported},
		{"bad flag", "x,,n=alice,r=CLI", "", ErrMalformed},
		{"no GS2 header", "n=alice,r=CLI", "", ErrMalformed},
		{"bad authzid", "n,b=alice,n=alice,r=CLI", "", ErrMalformed},
		{"bad escape", "n,,n=al=2Dice,r=CLI", "", ErrMalformed},
		{"empty user", "n,,n=,r=CLI", "", ErrMalformed},
		{"control character", "n,,n=al\x01ice,r=CLI", "", ErrMalformed},
		{"invalid UTF-8", "n,,n=al\xffice,r=CLI", "", ErrMalformed},
		{"nonce with space", "n,,n=alice,r=C LI", "", ErrMalformed},
		{"no nonce", "n,,n=alice", "", ErrMalformed},
		{"attributes swapped", "n,,r=CLI,n=alice", "", ErrMalformed},
		{"duplicate extension", "n,,n=alice,r=CLI,x=1,x=2", "", ErrMalformed},
		{"huge", "n,,n=alice,r=" + strings.Repeat("a", maxMessageLen), "", ErrMalformed},
		{"wrong binding", first, "c=eSws,r=CLISRV,p=AAAA", ErrMalformed},
		{"wrong nonce", first, "c=biws,r=CLIXXX,p=AAAA", ErrMalformed},
		{"nonce with extra text", first, "c=biws,r=CLISRVX,p=AAAA", ErrMalformed},
		{"client nonce thrice", first, "c=biws,r=CLICLICLISRV,p=AAAA", ErrMalformed},
		// librdkafka's form, c-nonce then the combined nonce, gets as far
		// as the proof.
		{"librdkafka's nonce, bad proof", first, "c=biws,r=CLICLISRV,p=AAAA", ErrBadProof},
		{"no proof", first, "c=biws,r=CLISRV", ErrMalformed},
		{"proof not base64", first, "c=biws,r=CLISRV,p=!!", ErrMalformed},
		{"short proof", first, "c=biws,r=CLISRV,p=AAAA", ErrBadProof},
		{"zero proof", first, "c=biws,r=CLISRV,p=" + base64.StdEncoding.EncodeToString(make([]byte, 32)), ErrBadProof},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ss := srv.NewSession()
			_, _, err := ss.Step(ctx, []byte(tt.first))
			if tt.second != "" {
				if err != nil {
					t.Fatalf("client-first refused: %v", err)
				}
				_, _, err = ss.Step(ctx, []byte(tt.second))
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if _, _, again := ss.Step(ctx, []byte(first)); again == nil {
				t.Fatal("a failed session accepted another message")
			}
		})
	}
}

func TestYFlagNeedsMatchingBinding(t *testing.T) {
	// A client that supports channel binding but thinks the server does
	// not sends "y,,"; its client-final must repeat it (c=eSws).
	store := users{}
	store.add(t, "alice", "secret", SHA256)
	srv, err := NewServer(SHA256, store)
	if err != nil {
		t.Fatal(err)
	}
	ss := srv.NewSession()
	out, _, err := ss.Step(context.Background(), []byte("y,,n=alice,r=CLI"))
	if err != nil {
		t.Fatal(err)
	}
	nonce := strings.TrimPrefix(strings.Split(string(out), ",")[0], "r=")
	_, _, err = ss.Step(context.Background(), []byte("c=biws,r="+nonce+",p=AAAA"))
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "channel binding") {
		t.Fatalf("biws after y,,: %v", err)
	}
}

func TestServerWithABrokenRecordLetsNobodyIn(t *testing.T) {
	good, err := NewCredential(SHA256, "secret", MinIterations)
	if err != nil {
		t.Fatal(err)
	}
	broken := good
	broken.Iterations = 1
	srv, err := NewServer(SHA256, users{"alice": {SHA256: broken}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := converse(t, srv, franzMech(SHA256, franzscram.Auth{User: "alice", Pass: "secret"})); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("err %v, want the broken record treated as absent", err)
	}
}

func TestNewServerRefusals(t *testing.T) {
	if _, err := NewServer(3, users{}); err == nil {
		t.Fatal("unknown mechanism accepted")
	}
	if _, err := NewServer(SHA256, nil); err == nil {
		t.Fatal("nil store accepted")
	}
}

// FuzzClientFirst: an accepted client-first message is exactly its GS2
// header and bare part, names a user that escapes back to what was sent
// and has a printable nonce.
func FuzzClientFirst(f *testing.F) {
	for _, s := range []string{"n,,n=alice,r=abc", "y,,n=a=2Cb=3Dc,r=x,tokenauth=true", "n,a=alice,n=alice,r=abc", "p=x,,n=a,r=b", "n,,m=1,n=a,r=b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		c, err := parseClientFirst(msg)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error of no kind: %v", err)
			}
			return
		}
		if c.gs2Header+c.bare != msg {
			t.Fatalf("header %q + bare %q != %q", c.gs2Header, c.bare, msg)
		}
		if ValidateUsername(c.username) != nil || checkNonce(c.nonce) != nil {
			t.Fatalf("accepted user %q nonce %q", c.username, c.nonce)
		}
		if !strings.HasPrefix(c.bare, "n="+EscapeUsername(c.username)+",r="+c.nonce) {
			t.Fatalf("user %q does not escape back into %q", c.username, c.bare)
		}
		wantHeader := c.gs2Header[:2]
		if c.authzid != "" {
			wantHeader += "a=" + EscapeUsername(c.authzid)
		}
		if wantHeader += ","; c.gs2Header != wantHeader || (c.gs2Header[0] != 'n' && c.gs2Header[0] != 'y') {
			t.Fatalf("GS2 header %q, authzid %q", c.gs2Header, c.authzid)
		}
	})
}

// FuzzClientFinal: an accepted client-final message re-encodes to itself,
// and no message authenticates without knowing the password.
func FuzzClientFinal(f *testing.F) {
	store := users{}
	store.add(f, "alice", "secret", SHA256)
	srv, err := NewServer(SHA256, store)
	if err != nil {
		f.Fatal(err)
	}
	srv.serverNonce = func() (string, error) { return "SRV", nil }
	f.Add("c=biws,r=CLISRV,p=" + base64.StdEncoding.EncodeToString(make([]byte, 32)))
	f.Add("c=biws,r=CLISRV,x=1,p=AAAA")
	f.Add("c=,r=,p=")
	f.Fuzz(func(t *testing.T, msg string) {
		if fin, err := parseClientFinal(msg); err == nil {
			again := fin.withoutProof + ",p=" + base64.StdEncoding.EncodeToString(fin.proof)
			if again != msg {
				t.Fatalf("%q re-encodes as %q", msg, again)
			}
			if !strings.HasPrefix(msg, "c="+base64.StdEncoding.EncodeToString([]byte(fin.channelBinding))+",r="+fin.nonce) {
				t.Fatalf("binding %q nonce %q do not start %q", fin.channelBinding, fin.nonce, msg)
			}
		}
		ss := srv.NewSession()
		if _, _, err := ss.Step(context.Background(), []byte("n,,n=alice,r=CLI")); err != nil {
			t.Fatal(err)
		}
		if out, done, err := ss.Step(context.Background(), []byte(msg)); done || err == nil || out != nil {
			t.Fatalf("%q authenticated without the password: %q %v %v", msg, out, done, err)
		}
	})
}

func TestCredentialDerivation(t *testing.T) {
	for _, m := range []Mechanism{SHA256, SHA512} {
		c, err := NewCredential(m, "hunter2", 4096)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Salt) != SaltLen || len(c.StoredKey) != m.Size() || len(c.ServerKey) != m.Size() {
			t.Fatalf("%s: %d/%d/%d bytes", m, len(c.Salt), len(c.StoredKey), len(c.ServerKey))
		}
		salted, err := SaltedPassword(m, "hunter2", c.Salt, 4096)
		if err != nil {
			t.Fatal(err)
		}
		again, err := CredentialFromSaltedPassword(m, c.Salt, salted, 4096)
		if err != nil || !bytes.Equal(again.StoredKey, c.StoredKey) || !bytes.Equal(again.ServerKey, c.ServerKey) {
			t.Fatalf("%s: derivation is not repeatable: %v", m, err)
		}
		other, _ := NewCredential(m, "hunter2", 4096)
		if bytes.Equal(other.Salt, c.Salt) || bytes.Equal(other.StoredKey, c.StoredKey) {
			t.Fatalf("%s: two credentials for one password share a salt or key", m)
		}
		rec, err := c.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(rec, []byte("hunter2")) || strings.Contains(c.String(), "hunter2") || strings.Contains(c.String(), base64.StdEncoding.EncodeToString(c.Salt)) {
			t.Fatalf("%s: the password or salt shows: %s", m, c.String())
		}
	}
	tests := []struct {
		name string
		fn   func() error
	}{
		{"too few iterations", func() error { _, err := NewCredential(SHA256, "p", 4095); return err }},
		{"too many iterations", func() error { _, err := NewCredential(SHA256, "p", 16385); return err }},
		{"empty password", func() error { _, err := NewCredential(SHA256, "", 4096); return err }},
		{"unknown mechanism", func() error { _, err := NewCredential(0, "p", 4096); return err }},
		{"salted password of the wrong size", func() error {
			_, err := CredentialFromSaltedPassword(SHA512, []byte("salt"), make([]byte, 32), 4096)
			return err
		}},
		{"empty salt", func() error { _, err := CredentialFromSaltedPassword(SHA256, nil, make([]byte, 32), 4096); return err }},
	}
	for _, tt := range tests {
		if tt.fn() == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}

func TestParseMechanism(t *testing.T) {
	for _, m := range []Mechanism{SHA256, SHA512} {
		got, err := ParseMechanism(m.String())
		if err != nil || got != m {
			t.Fatalf("%s: %v %v", m, got, err)
		}
	}
	if _, err := ParseMechanism("SCRAM-SHA-1"); err == nil {
		t.Fatal("SCRAM-SHA-1 accepted")
	}
	if Mechanism(9).String() != "SCRAM-UNKNOWN(9)" {
		t.Fatal(Mechanism(9).String())
	}
}
