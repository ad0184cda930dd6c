package config

import (
	"slices"
	"strings"
	"testing"
)

func TestAuthorizationDefaultsFollowTheListeners(t *testing.T) {
	tests := []struct {
		name          string
		props         map[string]string
		authenticated []string
		iam           []string
		allowEveryone bool
		wantErr       string
	}{
		{name: "plaintext only", props: nil, allowEveryone: true},
		{name: "plaintext, set false", props: map[string]string{"allow.everyone.if.no.acl.found": "false"}},
		{name: "plaintext, set true", props: map[string]string{"allow.everyone.if.no.acl.found": "TRUE"}, allowEveryone: true},
		{name: "TLS without client certificates", allowEveryone: true, props: map[string]string{
			"listeners": "PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9094"}},
		{name: "mutual TLS", authenticated: []string{"SSL"}, props: map[string]string{
			"listeners": "PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9094", "listener.name.ssl.ssl.client.auth": "required"}},
		{name: "requested client certificates", authenticated: []string{"TLS"}, props: map[string]string{
			"listeners": "PLAINTEXT://127.0.0.1:9092,TLS://127.0.0.1:9094", "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,TLS:SSL",
			"listener.name.tls.ssl.client.auth": "requested"}},
		{name: "SCRAM and IAM", authenticated: []string{"SCRAM", "IAM"}, iam: []string{"IAM"}, props: map[string]string{
			"listeners":                                   "PLAINTEXT://127.0.0.1:9092,SCRAM://127.0.0.1:9096,IAM://127.0.0.1:9098",
			"listener.security.protocol.map":              "PLAINTEXT:PLAINTEXT,SCRAM:SASL_SSL,IAM:SASL_SSL",
			"listener.name.scram.sasl.enabled.mechanisms": "SCRAM-SHA-512,SCRAM-SHA-256",
			"listener.name.iam.sasl.enabled.mechanisms":   "OAUTHBEARER"}},
		{name: "true with SASL refused", authenticated: []string{"SASL_SSL"}, allowEveryone: true, wantErr: "authenticates clients", props: map[string]string{
			"listeners": "PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9096", "allow.everyone.if.no.acl.found": "true"}},
		{name: "false with SASL", authenticated: []string{"SASL_SSL"}, props: map[string]string{
			"listeners": "PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9096", "allow.everyone.if.no.acl.found": "false"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			for k, v := range tt.props {
				if err := c.Set(k, v); err != nil {
					t.Fatal(err)
				}
			}
			if got := c.AuthenticatedListeners(); !slices.Equal(got, tt.authenticated) {
				t.Errorf("authenticated listeners %v, want %v", got, tt.authenticated)
			}
			if got := c.IAMListeners(); !slices.Equal(got, tt.iam) {
				t.Errorf("IAM listeners %v, want %v", got, tt.iam)
			}
			if got := c.AllowEveryoneIfNoACLFound(); got != tt.allowEveryone {
				t.Errorf("allow.everyone.if.no.acl.found %v, want %v", got, tt.allowEveryone)
			}
			if v, _ := c.Get("allow.everyone.if.no.acl.found"); v != map[bool]string{true: "true", false: "false"}[tt.allowEveryone] {
				t.Errorf("reported as %q", v)
			}
			errs := c.authorizationErrors()
			switch {
			case tt.wantErr == "" && len(errs) > 0:
				t.Fatalf("refused: %v", errs)
			case tt.wantErr != "" && (len(errs) != 1 || errs[0].Name != "allow.everyone.if.no.acl.found" || !strings.Contains(errs[0].Error(), tt.wantErr)):
				t.Fatalf("errors %v, want one about allow.everyone.if.no.acl.found containing %q", errs, tt.wantErr)
			}
		})
	}
}

func TestIAMModeSetting(t *testing.T) {
	c := Default()
	if c.IAMAuthorization != IAMPolicies {
		t.Fatalf("tributary.iam.authorization defaults to %q", c.IAMAuthorization)
	}
	if err := c.Set("tributary.iam.authorization", "acls"); err != nil || c.IAMAuthorization != IAMACLs {
		t.Fatalf("acls: %v", err)
	}
	if err := c.Set("tributary.iam.authorization", "none"); err == nil {
		t.Fatal("an unknown mode accepted")
	}
}
