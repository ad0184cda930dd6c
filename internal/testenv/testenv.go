// Package testenv decides what a test does when the machine lacks something
// it needs: root, loop devices, a tmpfs mount, a tool from a Debian package,
// a built binary. On a developer's machine the test skips and says what is
// missing. In CI (CI=true, which .ci/run sets) it fails: `make tools`
// installs every such prerequisite there and CI runs as root, so a
// prerequisite missing in CI is a broken CI, and a skip would report a green
// run for something that was never tested.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// InCI reports whether the tests run in CI: CI set to a true value (true,
// 1), as .ci/run and most CI services set it.
func InCI() bool {
	ci, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && ci
}

// Missing ends the test because a prerequisite is missing: a skip naming
// it, or in CI a failure naming it.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s (CI=true: make tools and running as root provide every test prerequisite, so this fails instead of skipping)", reason)
		return
	}
	t.Skip(reason)
}

// Root ends the test unless it runs as root; what says what needs it.
func Root(t testing.TB, what string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "%s needs root: run the tests as root", what)
	}
}

// Tool returns the path of a command on PATH, or ends the test naming the
// Debian package that provides it (which `make tools` installs).
func Tool(t testing.TB, name, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "%s not installed (Debian package %s): run make tools", name, debianPackage)
	}
	return path
}

// Binary returns the executable that the environment variable env names
// (`make test` sets it to a binary it built), or ends the test saying how
// to set it.
func Binary(t testing.TB, env, what string) string {
	t.Helper()
	path := os.Getenv(env)
	if path == "" {
		Missing(t, "%s is not set: set it to %s (make test does) to run this test", env, what)
		return ""
	}
	info, err := os.Stat(path)
	if err != nil || info.IsDir() || info.Mode()&0o111 == 0 {
		t.Fatalf("%s=%s is not an executable file (%v): set it to %s", env, path, err, what)
	}
	return path
}

// EnvBrokerBinary names the tributary-broker that tests run (`make test`
// sets it to the binary it built).
const EnvBrokerBinary = "TRIBUTARY_BROKER_BINARY"

var brokerBuild struct {
	once sync.Once
	path string
	err  error
}

// BrokerBinary returns a tributary-broker for a test to run: the one
// TRIBUTARY_BROKER_BINARY names, else one built from this module once per
// test process (into a directory the operating system's temp cleaning
// removes; tests of one package share it).
func BrokerBinary(t testing.TB) string {
	t.Helper()
	if os.Getenv(EnvBrokerBinary) != "" {
		return Binary(t, EnvBrokerBinary, "a tributary-broker binary")
	}
	brokerBuild.once.Do(func() {
		gomod, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil || strings.TrimSpace(string(gomod)) == "" {
			brokerBuild.err = fmt.Errorf("finding the module root to build the broker: %v", err)
			return
		}
		dir, err := os.MkdirTemp("", "tributary-test-broker-")
		if err != nil {
			brokerBuild.err = err
			return
		}
		path := filepath.Join(dir, "tributary-broker")
		cmd := exec.Command("go", "build", "-o", path, "./broker/cmd/tributary-broker")
		cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
		if out, err := cmd.CombinedOutput(); err != nil {
			brokerBuild.err = fmt.Errorf("building the broker: %v\n%s", err, out)
			return
		}
		brokerBuild.path = path
	})
	if brokerBuild.err != nil {
		t.Fatal(brokerBuild.err)
	}
	return brokerBuild.path
}
