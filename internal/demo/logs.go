package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// awsCLI is Debian's aws CLI (`make tools` installs it).
const awsCLI = "/usr/bin/aws"

// logGroup is examples/local's logging.cloudwatch_logs.log_group.
const logGroup = "tributary/demo"

// cliEnv is the environment of the aws CLI against the local cloud: its
// test credentials, and no profile (botocore refuses a profile it cannot
// find, even an empty name).
func cliEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test")
}

// filterLogEvents runs `aws logs filter-log-events` against the local cloud
// and returns the events' streams and messages.
func filterLogEvents(ctx context.Context, args ...string) ([][2]string, error) {
	full := append([]string{"logs", "filter-log-events", "--log-group-name", logGroup, "--endpoint-url", endpoint,
		"--region", "us-east-1", "--output", "json"}, args...)
	cmd := exec.CommandContext(ctx, awsCLI, full...)
	cmd.Env = cliEnv()
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return nil, fmt.Errorf("aws logs filter-log-events: %w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return nil, fmt.Errorf("aws logs filter-log-events: %w", err)
	}
	var res struct {
		Events []struct {
			LogStreamName string `json:"logStreamName"`
			Message       string `json:"message"`
		} `json:"events"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("reading aws logs filter-log-events: %w", err)
	}
	var evs [][2]string
	for _, e := range res.Events {
		evs = append(evs, [2]string{e.LogStreamName, e.Message})
	}
	return evs, nil
}

// showLogs finds, with the aws CLI, each broker's start line in its stream
// and the audit entry of the demo topic's creation, waiting for the
// brokers' next shipment (every few seconds).
func (d *demo) showLogs(ctx context.Context, brokers int) error {
	if _, err := os.Stat(awsCLI); err != nil {
		d.say("skipping the CloudWatch Logs check: %s is not installed (make tools)", awsCLI)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	poll := func(what string, args ...string) ([][2]string, error) {
		for {
			evs, err := filterLogEvents(ctx, args...)
			if err == nil && len(evs) > 0 {
				return evs, nil
			}
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("%s not in CloudWatch Logs group %s after a minute (last error: %v)", what, logGroup, err)
			case <-time.After(time.Second):
			}
		}
	}
	starts, err := poll("the brokers' start lines", "--filter-pattern", `{ $.msg = "starting tributary broker" }`)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, e := range starts {
		seen[e[0]] = true
	}
	for len(seen) < brokers {
		// Each broker ships on its own schedule.
		if starts, err = poll("every broker's start line", "--filter-pattern", `{ $.msg = "starting tributary broker" }`); err != nil {
			return err
		}
		for _, e := range starts {
			seen[e[0]] = true
		}
		if ctx.Err() != nil {
			return fmt.Errorf("start lines in %d of %d broker streams", len(seen), brokers)
		}
	}
	d.say("CloudWatch Logs: a start line in each of %d broker streams of %s", len(seen), logGroup)
	audit, err := poll("the audit entry of the demo topic", "--log-stream-name-prefix", "broker-",
		"--filter-pattern", fmt.Sprintf(`{ $.log = "audit" && ($.object = %q || $.resource = %q) }`, topic, topic))
	if err != nil {
		return err
	}
	d.say("audit trail (%s): %s", audit[0][0], audit[0][1])
	if err := checkAuditCommand(ctx, auditCommand()); err != nil {
		return err
	}
	return nil
}

// auditCommand is an aws CLI command that prints the demo cluster's audit
// trail, to paste into a shell. It reads every broker's audit stream: an
// admin request is audited by the broker that served it, which may be any
// of them, so a command naming one broker's stream can print nothing.
func auditCommand() string {
	return fmt.Sprintf(`AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s aws --endpoint-url %s --region %s logs filter-log-events `+
		`--log-group-name %s --log-stream-name-prefix broker- --filter-pattern '{ $.log = "audit" }' `+
		`--query 'events[].[logStreamName,message]' --output text`,
		accessKey, secretKey, endpoint, region, logGroup)
}

// checkAuditCommand runs the audit command as a user would paste it, with
// bash, and fails unless it prints the demo topic's creation: the command
// the demo prints is one that works.
func checkAuditCommand(ctx context.Context, command string) error {
	stdout, _, err := runPasted(ctx, "the audit trail command", command)
	if err != nil {
		return err
	}
	object := fmt.Sprintf(`"object":%q`, topic)
	for _, line := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(line, "broker-") && strings.Contains(line, `"what":"topic created"`) && strings.Contains(line, object) {
			return nil
		}
	}
	return fmt.Errorf("the audit trail command printed no creation of topic %q: %s", topic, lastLines(stdout, 5))
}

// showAlarms lists the cluster's CloudWatch alarms and their states with
// the aws CLI.
func (d *demo) showAlarms(ctx context.Context) error {
	if _, err := os.Stat(awsCLI); err != nil {
		return nil // showLogs said why
	}
	cmd := exec.CommandContext(ctx, awsCLI, "cloudwatch", "describe-alarms", "--alarm-name-prefix", "tributary-demo-",
		"--endpoint-url", endpoint, "--region", "us-east-1", "--output", "json")
	cmd.Env = cliEnv()
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("aws cloudwatch describe-alarms: %w", err)
	}
	var res struct {
		MetricAlarms []struct{ AlarmName, StateValue string }
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return fmt.Errorf("reading aws cloudwatch describe-alarms: %w", err)
	}
	if len(res.MetricAlarms) == 0 {
		return fmt.Errorf("aws cloudwatch describe-alarms lists no alarm of the demo cluster")
	}
	d.say("CloudWatch alarms of the cluster (aws cloudwatch describe-alarms):")
	for _, a := range res.MetricAlarms {
		fmt.Printf("    %-60s %s\n", a.AlarmName, a.StateValue)
	}
	return nil
}
