// Package packer_test checks the broker image's build files: the Packer
// template (packer fmt, packer validate with Debian's Packer 1.6.6), the
// provisioning scripts (shellcheck) and the systemd unit (systemd-analyze
// verify, plus the hardening the image promises). Each check skips with the
// reason when its tool is not installed, and fails instead under CI=true
// (make tools installs packer, shellcheck and systemd).
package packer_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tributary/tributary/internal/testenv"
)

const (
	template = "tributary-broker.pkr.hcl"
	unitFile = "files/tributary-broker.service"
	// watchUnitFile is the data volume companion's unit.
	watchUnitFile = "files/tributary-volume-watch.service"
)

func requireTool(t *testing.T, name string) string {
	t.Helper()
	return testenv.Tool(t, name, map[string]string{
		"packer": "packer", "shellcheck": "shellcheck", "systemd-analyze": "systemd", "sh": "dash", "python3": "python3",
	}[name])
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
	dir := t.TempDir()
	var copies []string
	for _, file := range []string{unitFile, watchUnitFile} {
		unit, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		copyPath := filepath.Join(dir, filepath.Base(file))
		if err := os.WriteFile(copyPath, bytes.ReplaceAll(unit, []byte("/usr/local/bin/tributary-broker"), []byte(fakeBinary(t))), 0o644); err != nil {
			t.Fatal(err)
		}
		copies = append(copies, copyPath)
	}
	out, err := run(t, analyze, append([]string{"verify"}, copies...)...)
	if strings.Contains(out, "Failed to") && strings.Contains(out, "bus") {
		testenv.Missing(t, "systemd-analyze cannot run here: %s", out)
	}
	if err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestUnitHardening pins the promises docs/broker-image.md makes about the
// unit, so they cannot silently go away.
func TestUnitHardening(t *testing.T) {
	settings := unitSettings(t, unitFile)
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
	checkSettings(t, unitFile, settings, want)
	// The companion is root only for xfs_growfs: that one capability.
	checkSettings(t, watchUnitFile, unitSettings(t, watchUnitFile), map[string]string{
		"ExecStart":             "/usr/local/bin/tributary-broker volume-watch",
		"CapabilityBoundingSet": "CAP_SYS_ADMIN",
		"AmbientCapabilities":   "",
		"NoNewPrivileges":       "yes",
		"Restart":               "always",
		"WantedBy":              "multi-user.target",
	})
}

// unitSettings reads a unit's settings, each with every value it is given.
func unitSettings(t *testing.T, file string) map[string][]string {
	t.Helper()
	unit, err := os.ReadFile(file)
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
	return settings
}

func checkSettings(t *testing.T, file string, settings map[string][]string, want map[string]string) {
	t.Helper()
	for k, v := range want {
		got, ok := settings[k]
		if !ok || len(got) != 1 || got[0] != v {
			t.Errorf("%s: %s = %q, want exactly %q", file, k, got, v)
		}
	}
}

// TestImageNameAndTags pins the image's name and tags: the provider's
// tributary_broker_image data source finds images by them.
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

// TestRequireIMDSv2Script runs the post-processor script against a Packer
// manifest and a stand-in `aws` that records its arguments.
func TestRequireIMDSv2Script(t *testing.T) {
	sh := requireTool(t, "sh")
	requireTool(t, "python3")
	dir := t.TempDir()
	manifest := filepath.Join(dir, "packer-manifest.json")
	// Two runs: an earlier one whose AMI must be left alone, and the last
	// one, copied to a second region.
	if err := os.WriteFile(manifest, []byte(`{
  "builds": [
    {"name": "broker", "builder_type": "amazon-ebs", "artifact_id": "us-east-1:ami-0old", "packer_run_uuid": "run-1"},
    {"name": "broker", "builder_type": "amazon-ebs", "artifact_id": "us-east-1:ami-0new,eu-west-1:ami-0copy", "packer_run_uuid": "run-2"}
  ],
  "last_run_uuid": "run-2"
}`), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "bin")
	calls := filepath.Join(dir, "calls")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "aws"), []byte("#!/bin/sh\necho \"$*\" >> "+calls+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	runScript := func(t *testing.T, path string, env ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(sh, "scripts/require-imdsv2.sh")
		cmd.Env = append([]string{"PATH=" + path, "MANIFEST=" + manifest}, env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	systemPath := os.Getenv("PATH")

	if out, err := runScript(t, bin+":"+systemPath, "REQUIRE_IMDSV2=true"); err != nil {
		t.Fatalf("require-imdsv2.sh: %v\n%s", err, out)
	}
	got, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	want := "ec2 modify-image-attribute --region us-east-1 --image-id ami-0new --attribute imdsSupport --value v2.0\n" +
		"ec2 modify-image-attribute --region eu-west-1 --image-id ami-0copy --attribute imdsSupport --value v2.0\n"
	if string(got) != want {
		t.Errorf("aws calls:\n%s\nwant:\n%s", got, want)
	}

	if err := os.Remove(calls); err != nil {
		t.Fatal(err)
	}
	if out, err := runScript(t, bin+":"+systemPath, "REQUIRE_IMDSV2=false"); err != nil {
		t.Fatalf("require-imdsv2.sh with REQUIRE_IMDSV2=false: %v\n%s", err, out)
	}
	if _, err := os.Stat(calls); !os.IsNotExist(err) {
		t.Error("REQUIRE_IMDSV2=false still called aws")
	}

	// Without the AWS CLI the build must fail loudly rather than leave the AMI IMDSv1-capable.
	emptyBin := t.TempDir() // python3 only
	python3, _ := exec.LookPath("python3")
	if err := os.Symlink(python3, filepath.Join(emptyBin, "python3")); err != nil {
		t.Fatal(err)
	}
	out, err := runScript(t, emptyBin, "REQUIRE_IMDSV2=true")
	if err == nil || !strings.Contains(out, "AWS CLI is needed") {
		t.Errorf("without aws: err = %v, output %q; want a failure naming the AWS CLI", err, out)
	}
}

// TestInstallScript runs install.sh into a scratch root with stand-ins for
// the commands that change the system (package manager, user database,
// systemd, cloud-init), and checks what it installed and what it asked for.
func TestInstallScript(t *testing.T) {
	sh := requireTool(t, "sh")
	testenv.Root(t, "install.sh (it installs files owned by root)")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	calls := filepath.Join(dir, "calls")
	stubs := filepath.Join(dir, "stubs")
	if err := os.Mkdir(stubs, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"apt-get":         "",
		"groupadd":        "",
		"useradd":         "",
		"getent":          "exit 2", // no such user or group yet
		"systemctl":       "",
		"systemd-analyze": "",
		"cloud-init":      "",
	} {
		script := "#!/bin/sh\necho \"" + name + " $*\" >> " + calls + "\n" + body + "\n"
		if err := os.WriteFile(filepath.Join(stubs, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	prepare := func(t *testing.T, reportedVersion string) (binary, files string) {
		t.Helper()
		binary = filepath.Join(t.TempDir(), "tributary-broker")
		if err := os.WriteFile(binary, []byte("#!/bin/sh\necho "+reportedVersion+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		files = filepath.Join(t.TempDir(), "files")
		if err := os.CopyFS(files, os.DirFS("files")); err != nil {
			t.Fatal(err)
		}
		return binary, files
	}
	run := func(binary, files string) (string, error) {
		cmd := exec.Command(sh, "scripts/install.sh")
		cmd.Env = []string{"PATH=" + stubs + ":" + os.Getenv("PATH"), "BROKER_VERSION=1.2.3",
			"BINARY=" + binary, "FILES=" + files, "ROOT=" + root}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	t.Run("installs", func(t *testing.T) {
		binary, files := prepare(t, "1.2.3")
		if out, err := run(binary, files); err != nil {
			t.Fatalf("install.sh: %v\n%s", err, out)
		}
		for path, mode := range map[string]os.FileMode{
			"usr/local/bin/tributary-broker":                    0o755,
			"etc/systemd/system/tributary-broker.service":       0o644,
			"etc/systemd/system/tributary-volume-watch.service": 0o644,
			"etc/sysctl.d/60-tributary.conf":                    0o644,
			"etc/security/limits.d/60-tributary.conf":           0o644,
			"var/lib/tributary":                                 0o755 | os.ModeDir,
		} {
			fi, err := os.Stat(filepath.Join(root, path))
			if err != nil {
				t.Errorf("%s not installed: %v", path, err)
				continue
			}
			if fi.Mode() != mode {
				t.Errorf("%s has mode %v, want %v", path, fi.Mode(), mode)
			}
		}
		got, err := os.ReadFile(calls)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			"apt-get install -y -q --no-install-recommends xfsprogs util-linux",
			"groupadd --system --gid 9092 tributary",
			"useradd --system --uid 9092 --gid tributary --home-dir /var/lib/tributary",
			"systemctl enable tributary-broker.service tributary-volume-watch.service",
			"systemctl mask apt-daily-upgrade.timer",
			"cloud-init clean --logs",
		} {
			if !strings.Contains(string(got), want) {
				t.Errorf("install.sh did not run %q; it ran:\n%s", want, got)
			}
		}
		if _, err := os.Stat(binary); !os.IsNotExist(err) {
			t.Error("the uploaded binary was left in place")
		}
	})

	t.Run("refuses a binary of another version", func(t *testing.T) {
		binary, files := prepare(t, "9.9.9")
		out, err := run(binary, files)
		if err == nil || !strings.Contains(out, "reports version '9.9.9'") {
			t.Fatalf("install.sh with a 9.9.9 binary for 1.2.3: err = %v\n%s", err, out)
		}
	})
}
