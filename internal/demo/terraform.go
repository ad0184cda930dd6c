package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// prepareTerraform writes the CLI config with the dev override of the
// provider (pointing at ./bin, so no `terraform init` is needed) and a
// working copy of examples/local whose state stays in the cache.
func (d *demo) prepareTerraform() error {
	if err := os.MkdirAll(d.tfDir, 0o755); err != nil {
		return err
	}
	rc := fmt.Sprintf(`provider_installation {
  dev_overrides {
    %q = %q
  }
  direct {}
}
`, providerAddr, d.bin)
	if err := os.WriteFile(d.cliRC, []byte(rc), 0o644); err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(d.root, "examples", "local", "*.tf"))
	if err != nil {
		return err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(d.tfDir, filepath.Base(f)), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (d *demo) terraform(ctx context.Context, stdout io.Writer, args ...string) error {
	cmd := exec.CommandContext(ctx, "terraform", append([]string{"-chdir=" + d.tfDir}, args...)...)
	cmd.Env = append(os.Environ(),
		"TF_CLI_CONFIG_FILE="+d.cliRC,
		"TF_IN_AUTOMATION=1",
		"TF_INPUT=0",
		// The provider's progress (tflog INFO) goes to a file the demo follows.
		"TF_LOG_PROVIDER=INFO",
		"TF_LOG_PATH="+d.tfLog,
	)
	cmd.Stdout, cmd.Stderr = stdout, os.Stderr
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("terraform %s: %w", args[0], err)
	}
	return nil
}

// applyWithProgress runs terraform apply, printing Terraform's own output
// and the provider's progress messages as they happen.
func (d *demo) applyWithProgress(ctx context.Context, args ...string) error {
	_ = os.Remove(d.tfLog)
	followCtx, stopFollow := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.followProviderLog(followCtx)
	}()
	err := d.terraform(ctx, os.Stdout, args...)
	time.Sleep(300 * time.Millisecond) // let the follower print the last lines
	stopFollow()
	<-done
	return err
}

// providerLine matches the provider's INFO lines in TF_LOG_PATH, e.g.
// "2026-...Z [INFO]  provider.terraform-provider-tributary: launching broker instance: @module=tributary node_id=1 ... tf_req_id=..."
var providerLine = regexp.MustCompile(`\[INFO\]\s+provider\.terraform-provider-tributary[^:]*: (.*)$`)

// followProviderLog prints the provider's progress lines from the log file.
func (d *demo) followProviderLog(ctx context.Context) {
	var f *os.File
	for f == nil {
		var err error
		if f, err = os.Open(d.tfLog); err != nil {
			f = nil
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var partial string
	for {
		line, err := r.ReadString('\n')
		partial += line
		if err == nil {
			if m := providerLine.FindStringSubmatch(strings.TrimRight(partial, "\n")); m != nil && strings.Contains(partial, "@module=tributary") && !strings.Contains(partial, "timeout configuration not found") {
				fmt.Println("    · " + tidyFields(m[1]))
			}
			partial = ""
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tidyFields drops Terraform's bookkeeping fields from a provider log line.
func tidyFields(s string) string {
	var keep []string
	for _, f := range strings.Fields(s) {
		if strings.HasPrefix(f, "@") || strings.HasPrefix(f, "tf_") || strings.HasPrefix(f, "timestamp=") {
			continue
		}
		keep = append(keep, f)
	}
	return strings.TrimSuffix(strings.Join(keep, " "), ":")
}

// outputs reads `terraform output -json`.
func (d *demo) outputs(ctx context.Context) (map[string]json.RawMessage, error) {
	var sb strings.Builder
	if err := d.terraform(ctx, &sb, "output", "-json"); err != nil {
		return nil, err
	}
	var raw map[string]struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal([]byte(sb.String()), &raw); err != nil {
		return nil, fmt.Errorf("reading terraform outputs: %w", err)
	}
	out := map[string]json.RawMessage{}
	for k, v := range raw {
		out[k] = v.Value
	}
	return out, nil
}
