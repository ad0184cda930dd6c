package awsconfig

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeSTS answers AssumeRole and GetCallerIdentity the way STS does and
// records which access key signed each call.
type fakeSTS struct {
	mu       sync.Mutex
	signedBy map[string]string // action -> access key id
	form     map[string]map[string]string
}

func (f *fakeSTS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	action := r.Form.Get("Action")
	_, afterCred, _ := strings.Cut(r.Header.Get("Authorization"), "Credential=")
	keyID, _, _ := strings.Cut(afterCred, "/")
	f.mu.Lock()
	f.signedBy[action] = keyID
	fields := map[string]string{}
	for k := range r.Form {
		fields[k] = r.Form.Get(k)
	}
	f.form[action] = fields
	f.mu.Unlock()

	w.Header().Set("Content-Type", "text/xml")
	switch action {
	case "AssumeRole":
		fmt.Fprint(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>
<Credentials><AccessKeyId>ASIAASSUMED</AccessKeyId><SecretAccessKey>assumed-secret</SecretAccessKey>
<SessionToken>token</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>
<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/deployer/s</Arn><AssumedRoleId>AROAEXAMPLE:s</AssumedRoleId></AssumedRoleUser>
</AssumeRoleResult></AssumeRoleResponse>`)
	case "GetCallerIdentity":
		fmt.Fprint(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>
<Arn>arn:aws:sts::123456789012:assumed-role/deployer/s</Arn><UserId>AROAEXAMPLE:s</UserId><Account>123456789012</Account>
</GetCallerIdentityResult></GetCallerIdentityResponse>`)
	default:
		http.Error(w, "unexpected action "+action, http.StatusBadRequest)
	}
}

func TestAssumeRoleUsesTheRoleCredentials(t *testing.T) {
	isolateEnv(t)
	fake := &fakeSTS{signedBy: map[string]string{}, form: map[string]map[string]string{}}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)

	cl, err := New(context.Background(), Config{
		Region:               "us-east-1",
		AccessKey:            "AKIABASE",
		SecretKey:            "base-secret",
		SkipMetadataAPICheck: true,
		Endpoints:            map[Service]string{STS: srv.URL},
		AssumeRole: &AssumeRole{
			RoleARN:     "arn:aws:iam::123456789012:role/deployer",
			SessionName: "s",
			ExternalID:  "ext-42",
		},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if cl.AccountID != "123456789012" || cl.Partition != "aws" {
		t.Errorf("account/partition = %q/%q", cl.AccountID, cl.Partition)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if got := fake.signedBy["AssumeRole"]; got != "AKIABASE" {
		t.Errorf("AssumeRole signed by %q, want the base key", got)
	}
	if got := fake.signedBy["GetCallerIdentity"]; got != "ASIAASSUMED" {
		t.Errorf("GetCallerIdentity signed by %q, want the assumed role's key", got)
	}
	ar := fake.form["AssumeRole"]
	if ar["RoleArn"] != "arn:aws:iam::123456789012:role/deployer" || ar["ExternalId"] != "ext-42" || ar["RoleSessionName"] != "s" {
		t.Errorf("AssumeRole parameters = %v", ar)
	}
}
