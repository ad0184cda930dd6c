package oauthbearer

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	franzsasl "github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"

	"github.com/tributary/tributary/broker/iamauth"
	"github.com/tributary/tributary/broker/security/sasl"
	"github.com/tributary/tributary/internal/localcloud/awsapitest"
	"github.com/tributary/tributary/internal/localcloud/iam"
	"github.com/tributary/tributary/internal/localcloud/sts"
)

var errNope = errors.New("nope")

// tokens accepts "good-token" as User:alice for 10 minutes.
func tokens(_ context.Context, tok string, ext map[string]string) (sasl.Result, error) {
	if tok != "good-token" {
		return sasl.Result{}, errNope
	}
	if ext["tenant"] == "blocked" {
		return sasl.Result{}, errNope
	}
	return sasl.Result{Principal: "User:alice", SessionLifetime: 10 * time.Minute}, nil
}

// converse drives a franz-go client mechanism against a server session as
// a broker connection does. It returns the server's result or error.
func converse(t *testing.T, srv sasl.Mechanism, client franzsasl.Mechanism) (sasl.Result, error) {
	t.Helper()
	ctx := context.Background()
	cs, msg, err := client.Authenticate(ctx, "127.0.0.1:9098")
	if err != nil {
		t.Fatalf("client start: %v", err)
	}
	ss := srv.NewSession()
	for round := 0; round < 3; round++ {
		challenge, done, err := ss.Step(ctx, msg)
		if err != nil {
			return sasl.Result{}, err
		}
		clientDone, next, cerr := cs.Challenge(challenge)
		if done {
			if !clientDone || cerr != nil {
				t.Fatalf("server done, client %v %v", clientDone, cerr)
			}
			return ss.Result(), nil
		}
		if cerr != nil {
			t.Fatalf("client failed before the server: %v", cerr)
		}
		msg = next
	}
	t.Fatal("the exchange did not end")
	return sasl.Result{}, nil
}

func TestFranzGoClient(t *testing.T) {
	srv := NewServer(tokens)
	if srv.Name() != "OAUTHBEARER" {
		t.Fatal(srv.Name())
	}
	tests := []struct {
		name string
		auth oauth.Auth
		want error
	}{
		{"valid", oauth.Auth{Token: "good-token"}, nil},
		{"valid with extensions", oauth.Auth{Token: "good-token", Extensions: map[string]string{"tenant": "a", "trace": "x y"}}, nil},
		{"authzid of the principal", oauth.Auth{Token: "good-token", Zid: "alice"}, nil},
		{"refused token", oauth.Auth{Token: "bad-token"}, ErrInvalidToken},
		{"refused by extension", oauth.Auth{Token: "good-token", Extensions: map[string]string{"tenant": "blocked"}}, ErrInvalidToken},
		{"authzid of someone else", oauth.Auth{Token: "good-token", Zid: "root"}, ErrAuthzid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := converse(t, srv, tt.auth.AsMechanism())
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if tt.want != nil {
				if res != (sasl.Result{}) {
					t.Fatalf("result %+v on failure", res)
				}
				if tt.want == ErrInvalidToken && !errors.Is(err, errNope) {
					t.Fatalf("the validator's error is not reachable: %v", err)
				}
				return
			}
			if res.Principal != "User:alice" || res.SessionLifetime != 10*time.Minute {
				t.Fatalf("result %+v", res)
			}
		})
	}
}

func TestErrorExchange(t *testing.T) {
	ctx := context.Background()
	bad := (&InitialResponse{GS2Flag: "n", Scheme: "Bearer", Token: "bad-token"}).Encode()
	for _, reply := range []string{"\x01", `\x01`, "n,,\x01auth=Bearer good-token\x01\x01"} {
		ss := NewServer(tokens).NewSession()
		challenge, done, err := ss.Step(ctx, bad)
		if err != nil || done || string(challenge) != `{"status":"invalid_token"}` {
			t.Fatalf("first step: %q %v %v", challenge, done, err)
		}
		if p := ss.(sasl.Pending).PendingFailure(); !errors.Is(p, ErrInvalidToken) || !errors.Is(p, errNope) {
			t.Fatalf("pending failure after the error challenge: %v", p)
		}
		// Whatever the client replies (the \x01 byte, sarama's four
		// characters, or a second try with a good token), the exchange
		// fails with the first refusal.
		out, done, err := ss.Step(ctx, []byte(reply))
		if !errors.Is(err, ErrInvalidToken) || !errors.Is(err, errNope) || done || out != nil {
			t.Fatalf("reply %q: %q %v %v", reply, out, done, err)
		}
		if p := ss.(sasl.Pending).PendingFailure(); p != nil {
			t.Fatalf("a reported failure is still pending: %v", p)
		}
		if _, _, err := ss.Step(ctx, []byte("\x01")); !errors.Is(err, ErrMalformed) {
			t.Fatalf("a step after the end: %v", err)
		}
	}
}

func TestParseInitialResponse(t *testing.T) {
	good := "n,,\x01auth=Bearer tok.en-_~+/==\x01\x01"
	ir, err := ParseInitialResponse([]byte(good))
	if err != nil || ir.Token != "tok.en-_~+/==" || ir.Extensions != nil || ir.GS2Flag != "n" || ir.Authzid != "" {
		t.Fatalf("%+v %v", ir, err)
	}
	ir, err = ParseInitialResponse([]byte("y,a=us=2Cer=3D,\x01host=kafka\x01auth=bearer   abc\x01port=9098\x01\x01"))
	want := &InitialResponse{GS2Flag: "y", Authzid: "us,er=", Scheme: "bearer", Token: "abc", Extensions: map[string]string{"host": "kafka", "port": "9098"}}
	if err != nil || !reflect.DeepEqual(ir, want) {
		t.Fatalf("%+v %v", ir, err)
	}
	tests := []struct{ name, msg string }{
		{"empty", ""},
		{"channel binding", "p=tls-unique,,\x01auth=Bearer t\x01\x01"},
		{"no GS2 comma", "n\x01auth=Bearer t\x01\x01"},
		{"bad authzid", "n,b=x,\x01auth=Bearer t\x01\x01"},
		{"bad authzid escape", "n,a=x=41,\x01auth=Bearer t\x01\x01"},
		{"no leading separator", "n,,auth=Bearer t\x01\x01"},
		{"no final separator", "n,,\x01auth=Bearer t\x01"},
		{"no auth", "n,,\x01host=x\x01\x01"},
		{"other scheme", "n,,\x01auth=Basic dXNlcg==\x01\x01"},
		{"no token", "n,,\x01auth=Bearer \x01\x01"},
		{"token with space", "n,,\x01auth=Bearer a b\x01\x01"},
		{"token with quote", "n,,\x01auth=Bearer a\"b\x01\x01"},
		{"duplicate auth", "n,,\x01auth=Bearer a\x01auth=Bearer b\x01\x01"},
		{"numeric key", "n,,\x01auth=Bearer a\x01k1=v\x01\x01"},
		{"control in value", "n,,\x01auth=Bearer a\x01k=\x00\x01\x01"},
		{"empty pair", "n,,\x01auth=Bearer a\x01\x01\x01"},
		{"huge", "n,,\x01auth=Bearer " + strings.Repeat("a", MaxMessageLen) + "\x01\x01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseInitialResponse([]byte(tt.msg))
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err %v, want ErrMalformed", err)
			}
			// A session refuses the same message at once, without a challenge.
			out, done, serr := NewServer(tokens).NewSession().Step(context.Background(), []byte(tt.msg))
			if !errors.Is(serr, ErrMalformed) || out != nil || done {
				t.Fatalf("session: %q %v %v", out, done, serr)
			}
		})
	}
}

// FuzzParseInitialResponse: an accepted message has a b64token, alphabetic
// extension keys other than auth, and parses back to the same thing from
// its canonical encoding; a refusal never quotes a token-sized input.
func FuzzParseInitialResponse(f *testing.F) {
	f.Add([]byte("n,,\x01auth=Bearer abc\x01\x01"))
	f.Add([]byte("y,a=a=2Cb,\x01x=1\x01auth=bearer  a.b_c~\x01\x01"))
	f.Add([]byte("n,,\x01auth=Bearer abc\x01"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		ir, err := ParseInitialResponse(msg)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error of no kind: %v", err)
			}
			if len(msg) >= 24 && strings.Contains(err.Error(), string(msg)) {
				t.Fatalf("the error quotes the message: %v", err)
			}
			return
		}
		if !isB64Token(ir.Token) || !strings.EqualFold(ir.Scheme, "bearer") {
			t.Fatalf("accepted scheme %q token %q", ir.Scheme, ir.Token)
		}
		for k := range ir.Extensions {
			if !isKey(k) || k == "auth" {
				t.Fatalf("accepted extension key %q", k)
			}
		}
		again, err := ParseInitialResponse(ir.Encode())
		if err != nil || !reflect.DeepEqual(again, ir) {
			t.Fatalf("re-parse of %q: %+v %v, want %+v", ir.Encode(), again, err, ir)
		}
	})
}

// TestIAMTokensThroughOAuthBearer is the IAM listener's exchange end to
// end: franz-go's OAUTHBEARER client with an iamauth token, this server,
// the iamauth verifier and the local cloud's STS.
func TestIAMTokensThroughOAuthBearer(t *testing.T) {
	c := awsapitest.Start(t)
	iamSvc, err := iam.New(c.Env(""))
	if err != nil {
		t.Fatal(err)
	}
	stsSvc, err := sts.New(c.Env(""), iamSvc)
	if err != nil {
		t.Fatal(err)
	}
	c.Server.Register("iam", iamSvc)
	c.Server.Register("sts", stsSvc)
	c.Server.SetAuthorizer(iamSvc)
	ctx := context.Background()
	role := awsapitest.CreateRole(t, awsiam.NewFromConfig(c.Root()), "consumer", awsapitest.TrustAccount)
	session, _ := c.AssumeRole(t, aws.ToString(role.Arn), 3600)
	verifier, err := iamauth.NewVerifier(ctx, c.Root(), iamauth.VerifierOptions{ClusterID: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(func(ctx context.Context, tok string, _ map[string]string) (sasl.Result, error) {
		id, err := verifier.Verify(ctx, tok)
		if err != nil {
			return sasl.Result{}, err
		}
		return sasl.Result{Principal: id.KafkaPrincipal(), SessionLifetime: id.SessionLifetime}, nil
	})

	res, err := converse(t, srv, iamauth.FranzGoMechanism(session, "orders"))
	if err != nil || res.Principal != "User:arn:aws:iam::000000000000:role/consumer" || res.SessionLifetime < 14*time.Minute {
		t.Fatalf("IAM login: %+v %v", res, err)
	}
	_, err = converse(t, srv, iamauth.FranzGoMechanism(session, "payments"))
	if !errors.Is(err, ErrInvalidToken) || !errors.Is(err, iamauth.ErrWrongCluster) {
		t.Fatalf("token for another cluster: %v", err)
	}
	msg := sasl.ClientMessage(err)
	if !strings.Contains(msg, "another cluster") || !strings.Contains(msg, "payments") {
		t.Fatalf("the client is not told why: %q", msg)
	}
}
