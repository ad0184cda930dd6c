package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recorder stands in for a test: it records whether Missing skipped or
// failed it, without ending the real test.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Skip(args ...any)                  { r.skipped = fmt.Sprint(args...) }
func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestMissingSkipsOutsideCIAndFailsInCI(t *testing.T) {
	tests := []struct {
		ci       string
		wantFail bool
	}{
		{"", false},
		{"false", false},
		{"0", false},
		{"true", true},
		{"1", true},
	}
	for _, tt := range tests {
		t.Run("CI="+tt.ci, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			r := &recorder{}
			Missing(r, "%s not installed", "kcat")
			got := r.skipped
			if tt.wantFail {
				got = r.failed
				if r.skipped != "" {
					t.Fatalf("skipped in CI: %q", r.skipped)
				}
			} else if r.failed != "" {
				t.Fatalf("failed outside CI: %q", r.failed)
			}
			if !strings.Contains(got, "kcat not installed") {
				t.Fatalf("reason not given: skipped %q, failed %q", r.skipped, r.failed)
			}
		})
	}
}

func TestToolNamesThePackage(t *testing.T) {
	t.Setenv("CI", "true")
	t.Setenv("PATH", t.TempDir())
	r := &recorder{}
	Tool(r, "systemd-analyze", "systemd")
	if !strings.Contains(r.failed, "systemd-analyze not installed (Debian package systemd)") {
		t.Fatalf("failure %q does not name the tool and its package", r.failed)
	}
}

func TestBinary(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "tributary-broker")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, value, ci string
		want            string // the path returned, or a part of the message
		skip, fail      bool
	}{
		{name: "set", value: exe, ci: "true", want: exe},
		{name: "unset, not CI", ci: "", want: "TRIBUTARY_TEST_BINARY is not set", skip: true},
		{name: "unset, CI", ci: "true", want: "TRIBUTARY_TEST_BINARY is not set", fail: true},
		{name: "not executable", value: plain, ci: "", want: "is not an executable file", fail: true},
		{name: "a directory", value: dir, ci: "", want: "is not an executable file", fail: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			t.Setenv("TRIBUTARY_TEST_BINARY", tt.value)
			r := &recorder{}
			got := Binary(r, "TRIBUTARY_TEST_BINARY", "a built broker")
			switch {
			case tt.skip:
				if r.failed != "" || !strings.Contains(r.skipped, tt.want) {
					t.Fatalf("skipped %q, failed %q; want a skip saying %q", r.skipped, r.failed, tt.want)
				}
			case tt.fail:
				if r.skipped != "" || !strings.Contains(r.failed, tt.want) {
					t.Fatalf("skipped %q, failed %q; want a failure saying %q", r.skipped, r.failed, tt.want)
				}
			default:
				if got != tt.want || r.skipped != "" || r.failed != "" {
					t.Fatalf("got %q (skipped %q, failed %q), want %q", got, r.skipped, r.failed, tt.want)
				}
			}
		})
	}
}
