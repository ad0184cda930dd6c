// Package packer_test checks the broker image's build files: the Packer
// template (packer fmt, packer validate with Debian's Packer 1.6.6), the
// provisioning scripts (shellcheck) and the systemd unit (systemd-analyze
// verify, plus the hardening the image promises). Each check skips with the
// reason when its tool is not installed (make tools: apt-get install -y
// packer shellcheck systemd).
package packer_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const (
	template = "tributary-broker.pkr.hcl"
	unitFile = "files/tributary-broker.service"
)

func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (apt-get install -y %s, or make tools): skipping", name, map[string]string{
			"packer": "packer", "shellcheck": "shellcheck", "systemd-analyze": "systemd",
		}[name])
	}
	return path
}

func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	// Packer must not reach for AWS or plugins while validating.
	cmd.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1", "PACKER_LOG=")
	err := cmd.Run()
	return out.String(), err
}

func TestPackerFmt(t *testing.T) {
	packer := requireTool(t, "packer")
	if out, err := run(t, packer, "fmt", "-check", "-diff", "."); err != nil {
		t.Fatalf("packer fmt -check: %v (run `packer fmt packer/`)\n%s", err, out)
	}
}

// fakeBinary stands in for the broker binary, which validate only checks exists.
func fakeBinary(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tributary-broker")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPackerValidate(t *testing.T) {
	packer := requireTool(t, "packer")
	bin := fakeBinary(t)
	tests := []struct {
		name    string
		args    []string
		wantErr string // "" = valid
	}{
		{"example variables", []string{"-var-file=example.pkrvars.hcl", "-var", "binary_path=" + bin}, ""},
		{"x86_64", []string{"-var", "broker_version=0.1.0", "-var", "architecture=x86_64", "-var", "binary_path=" + bin}, ""},
		{"unknown architecture", []string{"-var", "broker_version=0.1.0", "-var", "architecture=sparc", "-var", "binary_path=" + bin}, "x86_64 or arm64"},
		{"missing binary", []string{"-var", "broker_version=0.1.0", "-var", "binary_path=" + filepath.Join(t.TempDir(), "absent")}, "absent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(t, packer, append(append([]string{"validate"}, tt.args...), ".")...)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("packer validate: %v\n%s", err, out)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("packer validate accepted it, want an error about %q\n%s", tt.wantErr, out)
			case tt.wantErr != "" && !strings.Contains(out, tt.wantErr):
				t.Fatalf("packer validate error does not mention %q:\n%s", tt.wantErr, out)
			}
		})
	}
}

func TestShellcheck(t *testing.T) {
	shellcheck := requireTool(t, "shellcheck")
	scripts, err := filepath.Glob("scripts/*.sh")
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no scripts found under packer/scripts (%v)", err)
	}
	for _, s := range scripts {
		t.Run(filepath.Base(s), func(t *testing.T) {
			if out, err := run(t, shellcheck, "--severity=style", s); err != nil {
				t.Fatalf("shellcheck %s: %v\n%s", s, err, out)
			}
		})
	}
}

// TestSystemdUnitVerify runs systemd-analyze verify on the unit. verify
// insists that the commands exist, so it checks a copy whose binary path
// points at a stand-in; and it reports unknown or misspelt settings as
// warnings with exit status 0, so any output fails the test.
func TestSystemdUnitVerify(t *testing.T) {
	analyze := requireTool(t, "systemd-analyze")
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	copyPath := filepath.Join(dir, "tributary-broker.service")
	if err := os.WriteFile(copyPath, bytes.ReplaceAll(unit, []byte("/usr/local/bin/tributary-broker"), []byte(fakeBinary(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, analyze, "verify", copyPath)
	if strings.Contains(out, "Failed to") && strings.Contains(out, "bus") {
		t.Skipf("systemd-analyze cannot run here: %s", out)
	}
	if err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestUnitHardening pins the promises docs/broker-image.md makes about the
// unit, so they cannot silently go away.
func TestUnitHardening(t *testing.T) {
	unit, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string][]string{}
	for line := range strings.Lines(string(unit)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		settings[k] = append(settings[k], v)
	}
	want := map[string]string{
		"User":                  "tributary",
		"Group":                 "tributary",
		"Type":                  "exec",
		"RuntimeDirectory":      "tributary",
		"ReadWritePaths":        "/var/lib/tributary",
		"LimitNOFILE":           "1048576",
		"KillSignal":            "SIGTERM",
		"TimeoutStopSec":        "120s",
		"ProtectSystem":         "strict",
		"NoNewPrivileges":       "yes",
		"CapabilityBoundingSet": "",
		"AmbientCapabilities":   "",
		"ProtectHome":           "yes",
		"PrivateTmp":            "yes",
		"Restart":               "on-failure",
		"ExecStartPre":          "+/usr/local/bin/tributary-broker boot --volume-only --data-owner tributary --runtime-dir /run/tributary",
		"ExecStart":             "/usr/local/bin/tributary-broker boot --runtime-dir /run/tributary",
		"WantedBy":              "multi-user.target",
	}
	for k, v := range want {
		got, ok := settings[k]
		if !ok || len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want exactly %q", k, got, v)
		}
	}
}

// TestImageNameAndTags pins seam S4: the provider finds images by these.
func TestImageNameAndTags(t *testing.T) {
	hcl, err := os.ReadFile(template)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`ami_name      = "tributary-broker-${var.broker_version}-${var.architecture}"`,
		`"tributary:version"    = var.broker_version`,
		`"tributary:component"  = "broker"`,
		`encrypt_boot = true`,
		`tags          = local.tags`,
	} {
		if !bytes.Contains(hcl, []byte(want)) {
			t.Errorf("%s does not contain %s", template, want)
		}
	}
}
