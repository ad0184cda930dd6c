package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// kcatCommand is a kcat command that reads the demo topic through the IAM
// listener, to paste into a shell. librdkafka, under kcat, can run no
// command for an OAUTHBEARER token; it can send an unsecured JWT with
// extensions, and the brokers accept an IAM token in the extension
// tributaryIamToken next to one (docs/broker-security.md). The token comes
// from `tributary-broker iam-token` with the local cloud's test
// credentials when the command runs, and is valid for 15 minutes.
func (d *demo) kcatCommand(bootstrap, caFile, clusterID string) string {
	token := fmt.Sprintf("$(AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_ENDPOINT_URL_STS=%s %s iam-token --region %s --cluster-id %s)",
		accessKey, secretKey, endpoint, shellQuote(filepath.Join(d.bin, "tributary-broker")), region, clusterID)
	return fmt.Sprintf(`kcat -b %s -X security.protocol=SASL_SSL -X ssl.ca.location=%s -X sasl.mechanisms=OAUTHBEARER `+
		`-X enable.sasl.oauthbearer.unsecure.jwt=true -X sasl.oauthbearer.config="principal=kcat extension_tributaryIamToken=%s" -t %s -C -o beginning -e`,
		bootstrap, shellQuote(caFile), token, topic)
}

// checkKcat runs the kcat command as a user would paste it, with bash, and
// fails unless it reads every record of this run: the command the demo
// prints is one that works.
func checkKcat(ctx context.Context, command, runID string) (int, error) {
	if _, err := exec.LookPath("kcat"); err != nil {
		return 0, errKcatMissing
	}
	stdout, stderr, err := runPasted(ctx, "the kcat command", command)
	if err != nil {
		return 0, err
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(line, runID+"-") {
			seen[line] = true
		}
	}
	if len(seen) != records {
		return len(seen), fmt.Errorf("the kcat command read %d of the %d records of this run: %s", len(seen), records, lastLines(stderr, 5))
	}
	return len(seen), nil
}

var errKcatMissing = errors.New("kcat is not installed (make tools)")

// runPasted runs a command the demo prints as a user would paste it, with
// bash and the CLI environment, for at most a minute; what names it in an
// error.
func runPasted(ctx context.Context, what, command string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", command)
	cmd.Env = cliEnv()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("%s: %w: %s", what, err, lastLines(errOut.String(), 5))
	}
	return out.String(), errOut.String(), nil
}

// lastLines is the last n lines of s, for an error message.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// shellQuote quotes s for a POSIX shell when it holds anything but the
// characters of plain paths, so that the printed command works from a
// checkout whose path has spaces.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:,=+-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
