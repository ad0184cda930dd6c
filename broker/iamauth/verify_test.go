package iamauth

import (
	"context"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/tributary/tributary/internal/localcloud/awsapitest"
	"github.com/tributary/tributary/internal/localcloud/iam"
	"github.com/tributary/tributary/internal/localcloud/sts"
)

const (
	clusterA = "cluster-a"
	clusterB = "cluster-b"
)

// localCloud starts the local cloud's IAM and STS on loopback.
func localCloud(t *testing.T) *awsapitest.Cloud {
	t.Helper()
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
	return c
}

// countingTransport counts the requests that reach the network.
type countingTransport struct {
	n    atomic.Int32
	next http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

// testClock is a clock the test moves.
type testClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

type verifierEnv struct {
	v     *Verifier
	count *countingTransport
	clock *testClock
}

func newTestVerifier(t *testing.T, cfg aws.Config, clusterID string, mod func(*VerifierOptions)) verifierEnv {
	t.Helper()
	ct := &countingTransport{next: http.DefaultTransport}
	clk := &testClock{}
	opts := VerifierOptions{ClusterID: clusterID, HTTPClient: &http.Client{Transport: ct, Timeout: 5 * time.Second}, Now: clk.Now}
	if mod != nil {
		mod(&opts)
	}
	v, err := NewVerifier(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return verifierEnv{v: v, count: ct, clock: clk}
}

// secretsOf lists what must never appear in an error: the token and the
// signature and session token inside it.
func secretsOf(t *testing.T, token string) []string {
	t.Helper()
	out := []string{token}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return out
	}
	u, err := url.Parse(string(raw))
	if err != nil {
		return out
	}
	q := u.Query()
	for _, k := range []string{"X-Amz-Signature", "X-Amz-Security-Token"} {
		if v := q.Get(k); len(v) > 8 {
			out = append(out, v, url.QueryEscape(v))
		}
	}
	return append(out, u.RawQuery)
}

func assertNoSecrets(t *testing.T, err error, secrets []string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Fatalf("the error quotes a secret of the token: %v", err)
		}
	}
}

// alterToken decodes token, lets f change the URL string and re-encodes it.
func alterToken(t *testing.T, token string, f func(string) string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		t.Fatal(err)
	}
	changed := f(string(raw))
	if changed == string(raw) {
		t.Fatalf("the alteration changed nothing in %s", raw)
	}
	return base64.RawURLEncoding.EncodeToString([]byte(changed))
}

func TestVerifyAgainstLocalCloud(t *testing.T) {
	c := localCloud(t)
	ctx := context.Background()
	role := awsapitest.CreateRole(t, awsiam.NewFromConfig(c.Root()), "app", awsapitest.TrustAccount)
	session, _ := c.AssumeRole(t, aws.ToString(role.Arn), 3600)
	env := newTestVerifier(t, c.Root(), clusterA, nil)

	tokA, err := NewToken(ctx, session, clusterA)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("valid role session", func(t *testing.T) {
		id, err := env.v.Verify(ctx, tokA.Value)
		if err != nil {
			t.Fatal(err)
		}
		want := Identity{
			Principal: "arn:aws:iam::000000000000:role/app",
			ARN:       "arn:aws:sts::000000000000:assumed-role/app/test-session",
			Account:   "000000000000",
			UserID:    aws.ToString(role.RoleId) + ":test-session",
			Expiry:    tokA.Expiry,
		}
		lifetime := id.SessionLifetime
		id.SessionLifetime = 0
		if id != want {
			t.Fatalf("identity %+v, want %+v", id, want)
		}
		if lifetime < 890*time.Second || lifetime > 900*time.Second {
			t.Fatalf("session lifetime %v, want the token's remaining ~900 s", lifetime)
		}
		if id.KafkaPrincipal() != "User:arn:aws:iam::000000000000:role/app" {
			t.Fatalf("Kafka principal %s", id.KafkaPrincipal())
		}
	})
	t.Run("valid account root", func(t *testing.T) {
		tok, err := NewToken(ctx, c.Root(), clusterA)
		if err != nil {
			t.Fatal(err)
		}
		id, err := env.v.Verify(ctx, tok.Value)
		if err != nil || id.Principal != "arn:aws:iam::000000000000:root" || id.ARN != id.Principal {
			t.Fatalf("root: %+v %v", id, err)
		}
	})

	tokB, err := NewToken(ctx, session, clusterB)
	if err != nil {
		t.Fatal(err)
	}
	unknown, err := NewToken(ctx, c.Config("AKIAUNKNOWNKEY000000", "secret", ""), clusterA)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		token string
		want  error
		// asks says whether the verifier may send the token to STS: the
		// refusals it can decide alone must cost no request.
		asks bool
	}{
		{"other cluster id", tokB.Value, ErrWrongCluster, false},
		{"other cluster id, fragment removed", alterToken(t, tokB.Value, func(s string) string {
			return s[:strings.Index(s, "#")]
		}), ErrSignatureRefused, true},
		{"other cluster id, fragment forged", alterToken(t, tokB.Value, func(s string) string {
			return strings.Replace(s, "#cluster="+clusterB, "#cluster="+clusterA, 1)
		}), ErrSignatureRefused, true},
		{"altered signature", alterToken(t, tokA.Value, func(s string) string {
			i := strings.Index(s, "X-Amz-Signature=") + len("X-Amz-Signature=")
			flip := byte('0')
			if s[i] == '0' {
				flip = '1'
			}
			return s[:i] + string(flip) + s[i+1:]
		}), ErrSignatureRefused, true},
		{"altered expiry", alterToken(t, tokA.Value, func(s string) string {
			return strings.Replace(s, "X-Amz-Expires=900", "X-Amz-Expires=899", 1)
		}), ErrSignatureRefused, true},
		{"unknown access key", unknown.Value, ErrSignatureRefused, true},
		{"not a presigned URL", base64.RawURLEncoding.EncodeToString([]byte("hello")), ErrMalformed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := env.count.n.Load()
			_, err := env.v.Verify(ctx, tt.token)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			assertNoSecrets(t, err, secretsOf(t, tt.token))
			if asked := env.count.n.Load() > before; asked != tt.asks {
				t.Fatalf("asked STS: %v, want %v", asked, tt.asks)
			}
		})
	}

	t.Run("expired, by the verifier's clock", func(t *testing.T) {
		env := newTestVerifier(t, c.Root(), clusterA, nil)
		env.clock.Advance(MaxValidity + 2*time.Minute)
		_, err := env.v.Verify(ctx, tokA.Value)
		if !errors.Is(err, ErrExpired) || env.count.n.Load() != 0 {
			t.Fatalf("err %v after %d requests, want ErrExpired and no request", err, env.count.n.Load())
		}
		assertNoSecrets(t, err, secretsOf(t, tokA.Value))
	})
	t.Run("dated in the future", func(t *testing.T) {
		tok, err := newToken(ctx, session, clusterA, time.Now().Add(10*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.v.Verify(ctx, tok.Value); !errors.Is(err, ErrExpired) {
			t.Fatalf("err %v, want ErrExpired", err)
		}
	})
	t.Run("expired, by STS's clock", func(t *testing.T) {
		// A verifier whose clock lags lets the token through; STS, whose
		// clock has moved on, refuses it, and the refusal says expired.
		tok, err := NewToken(ctx, c.Root(), clusterA)
		if err != nil {
			t.Fatal(err)
		}
		env := newTestVerifier(t, c.Root(), clusterA, nil)
		c.Clock.Advance(MaxValidity + time.Minute)
		t.Cleanup(func() { c.Clock.Advance(-(MaxValidity + time.Minute)) })
		_, err = env.v.Verify(ctx, tok.Value)
		if !errors.Is(err, ErrExpired) || env.count.n.Load() != 1 {
			t.Fatalf("err %v after %d requests, want ErrExpired from STS", err, env.count.n.Load())
		}
	})
}

func TestVerifyRolePathIsDropped(t *testing.T) {
	c := localCloud(t)
	ctx := context.Background()
	out, err := awsiam.NewFromConfig(c.Root()).CreateRole(ctx, &awsiam.CreateRoleInput{
		RoleName: aws.String("pathed"), Path: aws.String("/team/"), AssumeRolePolicyDocument: aws.String(awsapitest.TrustAccount),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(aws.ToString(out.Role.Arn), ":role/team/pathed") {
		t.Fatalf("role ARN %s has no path", aws.ToString(out.Role.Arn))
	}
	session, _ := c.AssumeRole(t, aws.ToString(out.Role.Arn), 3600)
	env := newTestVerifier(t, c.Root(), clusterA, nil)
	tok, err := NewToken(ctx, session, clusterA)
	if err != nil {
		t.Fatal(err)
	}
	id, err := env.v.Verify(ctx, tok.Value)
	if err != nil || id.Principal != "arn:aws:iam::000000000000:role/pathed" {
		t.Fatalf("%+v %v, want the path-less role ARN", id, err)
	}
}

func TestVerifyNeverAsksTheTokensHost(t *testing.T) {
	c := localCloud(t)
	ctx := context.Background()
	var evilHits atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		evilHits.Add(1)
		_, _ = w.Write([]byte(`<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>arn:aws:iam::000000000000:root</Arn><Account>000000000000</Account></GetCallerIdentityResult></GetCallerIdentityResponse>`))
	}))
	t.Cleanup(evil.Close)
	evilCfg := c.Root()
	evilCfg.BaseEndpoint = aws.String(evil.URL)
	tok, err := NewToken(ctx, evilCfg, clusterA)
	if err != nil {
		t.Fatal(err)
	}
	env := newTestVerifier(t, c.Root(), clusterA, nil)
	_, err = env.v.Verify(ctx, tok.Value)
	if !errors.Is(err, ErrWrongEndpoint) || evilHits.Load() != 0 || env.count.n.Load() != 0 {
		t.Fatalf("err %v, evil host asked %d times, STS %d: want ErrWrongEndpoint and no request", err, evilHits.Load(), env.count.n.Load())
	}
	assertNoSecrets(t, err, secretsOf(t, tok.Value))
}

func TestVerifyCachesAndSharesOneSTSCall(t *testing.T) {
	c := localCloud(t)
	ctx := context.Background()
	env := newTestVerifier(t, c.Root(), clusterA, func(o *VerifierOptions) { o.CacheTTL = 20 * time.Second })
	tok, err := NewToken(ctx, c.Root(), clusterA)
	if err != nil {
		t.Fatal(err)
	}
	const storm = 50
	var wg sync.WaitGroup
	errs := make(chan error, storm)
	for range storm {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := env.v.Verify(ctx, tok.Value)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := env.count.n.Load(); n != 1 {
		t.Fatalf("%d logins with one token sent %d requests to STS, want 1", storm, n)
	}
	env.clock.Advance(10 * time.Second)
	id, err := env.v.Verify(ctx, tok.Value)
	if err != nil || env.count.n.Load() != 1 {
		t.Fatalf("within the TTL: %v, %d requests", err, env.count.n.Load())
	}
	if id.SessionLifetime > MaxValidity-10*time.Second {
		t.Fatalf("a cached identity's lifetime %v did not shrink with the token's age", id.SessionLifetime)
	}
	env.clock.Advance(11 * time.Second)
	if _, err := env.v.Verify(ctx, tok.Value); err != nil || env.count.n.Load() != 2 {
		t.Fatalf("past the TTL: %v, %d requests, want a second request", err, env.count.n.Load())
	}
	// A refusal is cached too: a client retrying a bad token in a loop
	// costs one request per TTL.
	bad := alterToken(t, tok.Value, func(s string) string { return strings.Replace(s, "X-Amz-Expires=900", "X-Amz-Expires=899", 1) })
	for range 3 {
		if _, err := env.v.Verify(ctx, bad); !errors.Is(err, ErrSignatureRefused) {
			t.Fatalf("err %v", err)
		}
	}
	if n := env.count.n.Load(); n != 3 {
		t.Fatalf("three tries of a refused token sent %d requests in all, want 3 (one more)", n)
	}
}

func TestVerifySTSUnavailable(t *testing.T) {
	// A listener that accepts and closes at once: nothing answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	down := "http://" + ln.Addr().String()

	status := atomic.Int32{}
	status.Store(http.StatusServiceUnavailable)
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
		_, _ = w.Write([]byte(`<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code><Message>try later</Message></Error></ErrorResponse>`))
	}))
	t.Cleanup(flaky.Close)

	cfg := func(endpoint string) aws.Config {
		return aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
			Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return aws.Credentials{AccessKeyID: "AKIAEXAMPLE", SecretAccessKey: "secret", SessionToken: "session-token-that-must-not-leak"}, nil
			})}
	}
	ctx := context.Background()
	for _, endpoint := range []string{down, flaky.URL} {
		tok, err := NewToken(ctx, cfg(endpoint), clusterA)
		if err != nil {
			t.Fatal(err)
		}
		env := newTestVerifier(t, cfg(endpoint), clusterA, nil)
		for range 2 {
			_, err = env.v.Verify(ctx, tok.Value)
			if !errors.Is(err, ErrSTSUnavailable) {
				t.Fatalf("%s: err %v, want ErrSTSUnavailable", endpoint, err)
			}
			assertNoSecrets(t, err, append(secretsOf(t, tok.Value), "session-token-that-must-not-leak"))
		}
		if n := env.count.n.Load(); n != 2 {
			t.Fatalf("%s: %d requests for two logins, want 2: an outage is never cached", endpoint, n)
		}
	}
}

func TestNewVerifierRefusesBadSettings(t *testing.T) {
	ctx := context.Background()
	cfg := aws.Config{Region: "us-east-1"}
	for _, opts := range []VerifierOptions{
		{},
		{ClusterID: "has space"},
		{ClusterID: clusterA, Endpoint: "ftp://sts.example"},
		{ClusterID: clusterA, Endpoint: "not a url"},
	} {
		if _, err := NewVerifier(ctx, cfg, opts); err == nil {
			t.Errorf("NewVerifier(%+v) accepted", opts)
		}
	}
	if _, err := NewVerifier(ctx, aws.Config{}, VerifierOptions{ClusterID: clusterA}); err == nil {
		t.Error("NewVerifier without a region or endpoint accepted")
	}
	v, err := NewVerifier(ctx, aws.Config{Region: "eu-west-1"}, VerifierOptions{ClusterID: clusterA})
	if err != nil || v.Endpoint() != "https://sts.eu-west-1.amazonaws.com/" {
		t.Fatalf("default endpoint %v %v", v, err)
	}
}
