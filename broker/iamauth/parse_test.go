package iamauth

import (
	"context"
	"encoding/base64"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

// sampleURL is a presigned URL as NewToken makes it, fixed in time.
func sampleURL(t testing.TB) string {
	t.Helper()
	tok, err := newToken(context.Background(), staticConfig("us-east-1", ""), clusterA, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok.Value)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func enc(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestParseTokenRefusals(t *testing.T) {
	good := sampleURL(t)
	if _, err := parseToken(enc(good)); err != nil {
		t.Fatalf("the sample does not parse: %v", err)
	}
	replace := func(old, new string) string {
		t.Helper()
		if !strings.Contains(good, old) {
			t.Fatalf("%q not in the sample", old)
		}
		return enc(strings.Replace(good, old, new, 1))
	}
	tests := []struct {
		name, token, want string
	}{
		{"empty", "", "empty"},
		{"too long", strings.Repeat("A", MaxTokenLen+1), "more than"},
		{"padded base64", enc(good) + "==", "base64url"},
		{"standard base64", base64.StdEncoding.EncodeToString([]byte(good + "??>")), "base64url"},
		{"not a URL", enc("%zz"), "not a URL"},
		{"other scheme", replace("https://", "ftp://"), "http(s)"},
		{"user info", replace("https://", "https://user@"), "plain host"},
		{"no host", enc("https:///?Action=GetCallerIdentity"), "plain host"},
		{"other action", replace("Action=GetCallerIdentity", "Action=AssumeRole"), "GetCallerIdentity"},
		{"other version", replace("Version=2011-06-15", "Version=2099-01-01"), "GetCallerIdentity"},
		{"extra parameter", replace("Action=GetCallerIdentity", "Action=GetCallerIdentity&RoleArn=x"), "unexpected parameter"},
		{"repeated parameter", replace("Action=GetCallerIdentity", "Action=GetCallerIdentity&Action=GetCallerIdentity"), "repeats"},
		{"missing signature", enc(strings.Split(good, "&X-Amz-Signature=")[0]), "no X-Amz-Signature"},
		{"other algorithm", replace("X-Amz-Algorithm=AWS4-HMAC-SHA256", "X-Amz-Algorithm=AWS4-ECDSA-P256-SHA256"), "AWS4-HMAC-SHA256"},
		{"host only signed", replace("X-Amz-SignedHeaders=host%3Bx-tributary-cluster-id", "X-Amz-SignedHeaders=host"), "signs the headers"},
		{"more headers signed", replace("X-Amz-SignedHeaders=host%3Bx-tributary-cluster-id", "X-Amz-SignedHeaders=host%3Bx-other%3Bx-tributary-cluster-id"), "signs the headers"},
		{"expires too long", replace("X-Amz-Expires=900", "X-Amz-Expires=3600"), "1-900"},
		{"expires zero", replace("X-Amz-Expires=900", "X-Amz-Expires=0"), "1-900"},
		{"expires not a number", replace("X-Amz-Expires=900", "X-Amz-Expires=9e2"), "1-900"},
		{"bad date", replace("X-Amz-Date=20260102T030405Z", "X-Amz-Date=2026-01-02T03:04:05Z"), "X-Amz-Date"},
		{"scope date differs", replace("X-Amz-Date=20260102T030405Z", "X-Amz-Date=20260103T030405Z"), "scope date"},
		{"scope of another service", replace("%2Fsts%2Faws4_request", "%2Fkafka-cluster%2Faws4_request"), "credential scope"},
		{"signature not hex", replace("X-Amz-Signature=", "X-Amz-Signature=Z"), "X-Amz-Signature"},
		{"fragment not cluster", replace("#cluster=", "#tenant="), "fragment"},
		{"fragment bad id", replace("#cluster="+clusterA, "#cluster=a%20b"), "fragment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseToken(tt.token)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want ErrMalformed mentioning %q", err, tt.want)
			}
			if len(tt.token) > 16 && strings.Contains(err.Error(), tt.token) {
				t.Fatalf("the error quotes the token: %v", err)
			}
		})
	}
}

func TestParseTokenWithoutFragment(t *testing.T) {
	// Tokens from other signers (no fragment) are accepted; STS alone then
	// decides the cluster binding.
	good := sampleURL(t)
	p, err := parseToken(enc(good[:strings.Index(good, "#")]))
	if err != nil || p.clusterHint != "" {
		t.Fatalf("%+v %v", p, err)
	}
}

func TestNormalizeARN(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"arn:aws:sts::123456789012:assumed-role/app/session-1", "arn:aws:iam::123456789012:role/app", ""},
		{"arn:aws-cn:sts::123456789012:assumed-role/app/i-0abc", "arn:aws-cn:iam::123456789012:role/app", ""},
		{"arn:aws-us-gov:sts::123456789012:assumed-role/a.b@c/s", "arn:aws-us-gov:iam::123456789012:role/a.b@c", ""},
		{"arn:aws:iam::123456789012:user/alice", "arn:aws:iam::123456789012:user/alice", ""},
		{"arn:aws:iam::123456789012:user/division/alice", "arn:aws:iam::123456789012:user/division/alice", ""},
		{"arn:aws:iam::123456789012:root", "arn:aws:iam::123456789012:root", ""},
		{"arn:aws:sts::123456789012:federated-user/bob", "arn:aws:sts::123456789012:federated-user/bob", ""},
		{"arn:aws:sts::123456789012:assumed-role/app", "", "assumed-role"},
		{"arn:aws:sts::123456789012:assumed-role//s", "", "assumed-role"},
		{"arn:aws:sts::123456789012:assumed-role/app/s/t", "", "assumed-role"},
		{"arn:aws:iam::123456789012", "", "not an ARN"},
		{"urn:aws:iam::123456789012:root", "", "not an ARN"},
		{"", "", "not an ARN"},
	}
	for _, tt := range tests {
		got, err := NormalizeARN(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("NormalizeARN(%q) = %q, %v; want an error mentioning %q", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("NormalizeARN(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// FuzzParseToken: whatever a client sends, a token either is refused as
// malformed without being quoted, or is exactly a presigned
// GetCallerIdentity over host and the cluster header, valid 1-900 s.
func FuzzParseToken(f *testing.F) {
	good := sampleURL(f)
	f.Add(enc(good))
	f.Add(enc(good[:strings.Index(good, "#")]))
	f.Add(enc(strings.Replace(good, "Action=GetCallerIdentity", "Action=AssumeRole", 1)))
	f.Add(enc(strings.Replace(good, "X-Amz-Expires=900", "X-Amz-Expires=901", 1)))
	f.Add(enc("https://h/?Action=GetCallerIdentity"))
	f.Add("")
	f.Add("====")
	f.Fuzz(func(t *testing.T, token string) {
		p, err := parseToken(token)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("a parse error that is not ErrMalformed: %v", err)
			}
			if len(token) >= 16 && strings.Contains(err.Error(), token) {
				t.Fatalf("the error quotes the token: %v", err)
			}
			return
		}
		q, err := url.ParseQuery(p.rawQuery)
		if err != nil {
			t.Fatalf("accepted query does not parse: %v", err)
		}
		for k, vs := range q {
			if !allowedParams[k] || len(vs) != 1 {
				t.Fatalf("accepted parameter %q x%d", k, len(vs))
			}
		}
		if q.Get("Action") != stsAction || q.Get("X-Amz-SignedHeaders") != signedHeaders {
			t.Fatalf("accepted %s signing %s", q.Get("Action"), q.Get("X-Amz-SignedHeaders"))
		}
		if p.expires < time.Second || p.expires > MaxValidity || !p.expiry().Equal(p.date.Add(p.expires)) {
			t.Fatalf("accepted validity %v", p.expires)
		}
		if p.host == "" || (p.scheme != "https" && p.scheme != "http") {
			t.Fatalf("accepted %s://%s", p.scheme, p.host)
		}
		if p.clusterHint != "" && ValidateClusterID(p.clusterHint) != nil {
			t.Fatalf("accepted cluster hint %q", p.clusterHint)
		}
		again, err := parseToken(token)
		if err != nil || *again != *p {
			t.Fatalf("a second parse differs: %+v %v", again, err)
		}
	})
}

// FuzzNormalizeARN: a role session always becomes its role, never keeps
// the session name, and normalising twice changes nothing.
func FuzzNormalizeARN(f *testing.F) {
	f.Add("arn:aws:sts::123456789012:assumed-role/app/session")
	f.Add("arn:aws:iam::123456789012:user/a/b")
	f.Add("arn:aws:sts::1:assumed-role/a/b/c")
	f.Fuzz(func(t *testing.T, arn string) {
		got, err := NormalizeARN(arn)
		if err != nil {
			return
		}
		if !strings.HasPrefix(got, "arn:") {
			t.Fatalf("%q -> %q", arn, got)
		}
		twice, err := NormalizeARN(got)
		if err != nil || twice != got {
			t.Fatalf("not idempotent: %q -> %q -> %q %v", arn, got, twice, err)
		}
		if parts := strings.SplitN(arn, ":", 6); parts[2] == "sts" && strings.HasPrefix(parts[5], "assumed-role/") {
			prefix := "arn:" + parts[1] + ":iam::" + parts[4] + ":role/"
			role := strings.TrimPrefix(got, prefix)
			if !strings.HasPrefix(got, prefix) || role == "" || strings.Contains(role, "/") ||
				!strings.HasPrefix(parts[5], "assumed-role/"+role+"/") || len(parts[5]) == len("assumed-role/"+role+"/") {
				t.Fatalf("session %q -> %q", arn, got)
			}
		}
	})
}
