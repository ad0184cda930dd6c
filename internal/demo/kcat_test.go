package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestKcatCommandShell runs the printed kcat command's token part through
// bash with the broker binary replaced by echo, from a checkout whose path
// has a space and a quote: the shell must see one argument per path.
func TestKcatCommandShell(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a b'c")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d := &demo{bin: dir}
	script := "#!/bin/sh\nprintf '%s|' \"$AWS_ENDPOINT_URL_STS\" \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "tributary-broker"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := d.kcatCommand("127.0.0.1:9098", filepath.Join(dir, "ca.pem"), "abc-123")
	// Print kcat's arguments instead of running kcat.
	out, err := exec.Command("bash", "-c", "kcat() { printf '<%s>' \"$@\"; }; "+cmd).Output()
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	for _, want := range []string{
		"<-b><127.0.0.1:9098>",
		"<ssl.ca.location=" + filepath.Join(dir, "ca.pem") + ">",
		"<sasl.oauthbearer.config=principal=kcat extension_tributaryIamToken=" + endpoint + "|iam-token|--region|us-east-1|--cluster-id|abc-123|>",
		"<-t><demo><-C><-o><beginning><-e>",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("kcat's arguments %s\nlack %s", out, want)
		}
	}
}

// TestAuditCommandShell runs the printed audit trail command through bash
// with aws replaced by a function that prints its arguments: it must read
// the audit stream of every broker, not of one, since the broker that
// audits the demo topic's creation is whichever served the request.
func TestAuditCommandShell(t *testing.T) {
	out, err := exec.Command("bash", "-c", `aws() { printf '<%s>' "$AWS_ACCESS_KEY_ID" "$@"; }; `+auditCommand()).Output()
	if err != nil {
		t.Fatalf("%s: %v", auditCommand(), err)
	}
	for _, want := range []string{
		"<test><--endpoint-url><" + endpoint + ">",
		"<--log-group-name><" + logGroup + ">",
		"<--log-stream-name-prefix><broker->",
		`<--filter-pattern><{ $.log = "audit" }>`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("aws's arguments %s\nlack %s", out, want)
		}
	}
	if strings.Contains(string(out), "<--log-stream-names>") {
		t.Errorf("aws's arguments %s name streams: the audit entry may be in another broker's", out)
	}
}
