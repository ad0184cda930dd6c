package provider

import (
	"os"
	"path/filepath"
	"testing"
)

// TestQuietCLIConfig: a TF_CLI_CONFIG_FILE naming no file is replaced by an
// empty file, so Terraform stops warning in every step; an existing file and
// an unset variable are left alone.
func TestQuietCLIConfig(t *testing.T) {
	existing := filepath.Join(t.TempDir(), "mine.tfrc")
	if err := os.WriteFile(existing, []byte("plugin_cache_dir = \"/tmp\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), ".terraformrc")
	for _, tt := range []struct {
		name, set string
		replaced  bool
	}{
		{"names no file", missing, true},
		{"names the user's file", existing, false},
		{"unset", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(envCLIConfig, tt.set)
			dir := t.TempDir()
			if err := quietCLIConfig(dir); err != nil {
				t.Fatal(err)
			}
			got := os.Getenv(envCLIConfig)
			if !tt.replaced {
				if got != tt.set {
					t.Fatalf("%s=%q became %q", envCLIConfig, tt.set, got)
				}
				return
			}
			if got != filepath.Join(dir, "terraformrc") {
				t.Fatalf("%s=%q became %q, want the empty file in %s", envCLIConfig, tt.set, got, dir)
			}
			if data, err := os.ReadFile(got); err != nil || len(data) != 0 {
				t.Fatalf("the replacement %s: %q, %v; want an empty file", got, data, err)
			}
		})
	}
}
