package imds

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

type fakeSource struct{ md Metadata }

func (f *fakeSource) Metadata(id string) (Metadata, bool) { return f.md, id == f.md.InstanceID }

func (f *fakeSource) RoleCredentials(id string) (RoleCredentials, error) {
	return RoleCredentials{AccessKeyID: "ASIAEXAMPLE", SecretAccessKey: "secret", Token: "token", Expiration: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}, nil
}

func startServer(t *testing.T, tokensRequired bool) *Server {
	t.Helper()
	return startServerWith(t, tokensRequired, false)
}

func startServerWith(t *testing.T, tokensRequired, disabled bool) *Server {
	t.Helper()
	src := &fakeSource{Metadata{
		InstanceID: "i-0abc", ImageID: "ami-1", InstanceType: "m7g.large", Region: "us-east-1", AZ: "us-east-1b", AccountID: "000000000000",
		PrivateIP: "127.16.2.4", UserData: []byte("hello"), HTTPTokensRequired: tokensRequired, RoleName: "broker",
		InstanceProfileARN: "arn:aws:iam::000000000000:instance-profile/broker",
		Interfaces:         []Interface{{MAC: "0e:00:00:00:00:01", DeviceIndex: 0, ID: "eni-1", PrivateIPs: []string{"127.16.2.4"}, SubnetID: "subnet-1"}},
		BlockDevices:       map[string]string{"ami": "/dev/xvda", "root": "/dev/xvda", "ebs1": "sdf"},
		EndpointDisabled:   disabled,
	}}
	s, err := Start("127.0.0.1:0", "i-0abc", src, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func do(t *testing.T, method, url string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestTokenFlow(t *testing.T) {
	s := startServer(t, true)
	base := strings.TrimSuffix(s.Endpoint(), "/")
	tests := []struct {
		name   string
		method string
		header map[string]string
		want   int
	}{
		{"token without ttl", http.MethodPut, nil, http.StatusBadRequest},
		{"token ttl too long", http.MethodPut, map[string]string{tokenTTLHeader: "21601"}, http.StatusBadRequest},
		{"token through a proxy", http.MethodPut, map[string]string{tokenTTLHeader: "60", "X-Forwarded-For": "1.2.3.4"}, http.StatusForbidden},
		{"token with GET", http.MethodGet, map[string]string{tokenTTLHeader: "60"}, http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, body := do(t, tt.method, base+"/latest/api/token", tt.header); got != tt.want {
				t.Fatalf("status %d (%s), want %d", got, body, tt.want)
			}
		})
	}
	if got, _ := do(t, http.MethodGet, base+"/latest/meta-data/instance-id", nil); got != http.StatusUnauthorized {
		t.Fatalf("no token with HttpTokens=required: %d", got)
	}
	if got, _ := do(t, http.MethodGet, base+"/latest/meta-data/instance-id", map[string]string{tokenHeader: "bogus"}); got != http.StatusUnauthorized {
		t.Fatalf("bogus token: %d", got)
	}
	status, tok := do(t, http.MethodPut, base+"/latest/api/token", map[string]string{tokenTTLHeader: "60"})
	if status != http.StatusOK || tok == "" {
		t.Fatalf("token: %d %q", status, tok)
	}
	auth := map[string]string{tokenHeader: tok}
	for path, want := range map[string]string{
		"/latest/meta-data/instance-id":                                            "i-0abc",
		"/latest/meta-data/local-ipv4":                                             "127.16.2.4",
		"/latest/meta-data/placement/availability-zone":                            "us-east-1b",
		"/latest/meta-data/mac":                                                    "0e:00:00:00:00:01",
		"/latest/meta-data/network/interfaces/macs/0e:00:00:00:00:01/interface-id": "eni-1",
		"/latest/meta-data/block-device-mapping/ebs1":                              "sdf",
		"/latest/meta-data/iam/security-credentials/":                              "broker",
		"/latest/user-data":                                                        "hello",
		"/latest/meta-data/block-device-mapping/":                                  "ami\nebs1\nroot",
	} {
		if got, body := do(t, http.MethodGet, base+path, auth); got != http.StatusOK || body != want {
			t.Errorf("%s: %d %q, want %q", path, got, body, want)
		}
	}
	_, body := do(t, http.MethodGet, base+"/latest/meta-data/iam/security-credentials/broker", auth)
	var creds map[string]string
	if err := json.Unmarshal([]byte(body), &creds); err != nil || creds["AccessKeyId"] != "ASIAEXAMPLE" || creds["Token"] != "token" || creds["Code"] != "Success" {
		t.Fatalf("role credentials: %s", body)
	}
	_, body = do(t, http.MethodGet, base+"/latest/dynamic/instance-identity/document", auth)
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil || doc["instanceId"] != "i-0abc" || doc["availabilityZone"] != "us-east-1b" || doc["privateIp"] != "127.16.2.4" {
		t.Fatalf("identity document: %s", body)
	}
	if got, _ := do(t, http.MethodGet, base+"/latest/meta-data/nope", auth); got != http.StatusNotFound {
		t.Fatalf("unknown path: %d", got)
	}
}

func TestTokensOptional(t *testing.T) {
	s := startServer(t, false)
	base := strings.TrimSuffix(s.Endpoint(), "/")
	if got, body := do(t, http.MethodGet, base+"/latest/meta-data/instance-id", nil); got != http.StatusOK || body != "i-0abc" {
		t.Fatalf("IMDSv1 with HttpTokens=optional: %d %q", got, body)
	}
	// A token that is present must still be valid.
	if got, _ := do(t, http.MethodGet, base+"/latest/meta-data/instance-id", map[string]string{tokenHeader: "bogus"}); got != http.StatusUnauthorized {
		t.Fatalf("bogus token with optional tokens: %d", got)
	}
}

func TestEndpointDisabled(t *testing.T) {
	s := startServerWith(t, false, true)
	base := strings.TrimSuffix(s.Endpoint(), "/")
	if got, _ := do(t, http.MethodPut, base+"/latest/api/token", map[string]string{tokenTTLHeader: "60"}); got != http.StatusForbidden {
		t.Fatalf("token with HttpEndpoint=disabled: %d", got)
	}
	if got, _ := do(t, http.MethodGet, base+"/latest/meta-data/instance-id", nil); got != http.StatusForbidden {
		t.Fatalf("metadata with HttpEndpoint=disabled: %d", got)
	}
}
