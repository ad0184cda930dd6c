package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/tributary/tributary/internal/testenv"
	"github.com/tributary/tributary/provider/internal/fleet"
)

// loggingConfig is the test cluster with logging to group, or without a
// logging block when group is "".
func loggingConfig(name, group string) string {
	logging := ""
	if group != "" {
		logging = fmt.Sprintf(`
  logging {
    cloudwatch_logs {
      enabled   = true
      log_group = %q
    }
  }`, group)
	}
	return clusterWithLogging(name, logging)
}

// clusterWithLogging is the logging tests' three-broker cluster with the
// logging block given ("" for none). Where no instance runs (moto) the
// provider does not wait for brokers that never come.
func clusterWithLogging(name, logging string) string {
	wait := ""
	if accEnv.noInstances != "" {
		wait = "  wait_for_brokers   = false\n"
	}
	return testAccProviderConfig() + fmt.Sprintf(`
resource "tributary_cluster" "test" {
  name               = %[1]q
  broker_version     = %[2]q
  instance_type      = %[3]q
  brokers_per_az     = 1
  client_cidr_blocks = ["127.0.0.0/8"]
%[5]s`+plaintextCluster+`
%[4]s

  storage {
    volume_size = 10
  }

  timeouts {
    create = "4m"
    update = "8m"
    delete = "4m"
  }
}
`, name, accEnv.version, accInstanceType(), logging, wait)
}

// TestAccCluster_logging: brokers ship their logs to the cluster's group,
// one stream per broker, their audit trail in another; Debian's aws CLI
// finds each broker's start line and the audit entry of a topic the test
// creates. Turning logging off is an in-place roll, after which the
// instance role may no longer write logs.
func TestAccCluster_logging(t *testing.T) {
	accParallel(t)
	skipWithoutRunningBrokers(t)
	if _, err := os.Stat(awsCLI); err != nil {
		testenv.Missing(t, "Debian's aws CLI is not installed (%s): run make tools or apt-get install awscli", awsCLI)
	}
	name := accName(t)
	group := "tributary/" + name
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{
			{
				Config: loggingConfig(name, group),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(clusterResourceName, "logging.cloudwatch_logs.enabled", "true"),
					resource.TestCheckResourceAttr(clusterResourceName, "logging.cloudwatch_logs.log_group", group),
					testAccCheckServesKafka("logged", 20),
					testAccCheckRoleMayLog(group, true),
					testAccCheckLogLines(group, "logged"),
				),
			},
			{
				Config:           loggingConfig(name, ""),
				ConfigPlanChecks: expectInPlaceUpdate(),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckNoResourceAttr(clusterResourceName, "logging.cloudwatch_logs.enabled"),
					testAccCheckRoleMayLog(group, false),
					testAccCheckServesKafka("unlogged", 20),
				),
			},
		},
	})
}

const awsCLI = "/usr/bin/aws"

// awsLogs runs `aws logs <args>` against the acceptance tests' endpoint
// and decodes its JSON answer.
func awsLogs(ctx context.Context, out any, args ...string) error {
	return awsJSON(ctx, out, "logs", args...)
}

// awsJSON runs Debian's `aws <service> <args>` against the acceptance
// tests' endpoint and decodes its JSON answer.
func awsJSON(ctx context.Context, out any, service string, args ...string) error {
	b, err := awsRun(ctx, append([]string{service}, args...)...)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

// awsRun runs Debian's `aws <args>` against the acceptance tests' endpoint
// and returns its standard output.
func awsRun(ctx context.Context, args ...string) ([]byte, error) {
	full := append(args, "--region", accEnv.region, "--output", "json")
	if accEnv.endpoint != "" {
		full = append(full, "--endpoint-url", accEnv.endpoint)
	}
	cmd := exec.CommandContext(ctx, awsCLI, full...)
	cmd.Env = os.Environ()
	if accEnv.endpoint != "" && os.Getenv("AWS_ACCESS_KEY_ID") == "" {
		cmd.Env = append(cmd.Env, "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test")
	}
	b, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return nil, fmt.Errorf("aws %s: %w: %s", strings.Join(full, " "), err, ee.Stderr)
		}
		return nil, fmt.Errorf("aws %s: %w", strings.Join(full, " "), err)
	}
	return b, nil
}

// testAccCheckLogLines waits until `aws logs filter-log-events` finds every
// broker's start line in its stream broker-<id>, and in the audit streams
// the creation of topic.
func testAccCheckLogLines(group, topic string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		o, err := observedCluster(s)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		type filtered struct {
			Events []struct {
				LogStreamName string `json:"logStreamName"`
				Message       string `json:"message"`
			} `json:"events"`
		}
		find := func(what string, args ...string) (filtered, error) {
			var last filtered
			var err error
			for {
				last = filtered{}
				err = awsLogs(ctx, &last, append([]string{"filter-log-events", "--log-group-name", group}, args...)...)
				if err == nil && len(last.Events) > 0 {
					return last, nil
				}
				select {
				case <-ctx.Done():
					return last, fmt.Errorf("%s: not found in %s within 2 minutes (last error: %v)", what, group, err)
				case <-time.After(2 * time.Second):
				}
			}
		}
		for _, b := range o.Brokers {
			stream := fmt.Sprintf("broker-%d", b.NodeID)
			got, err := find("the start line of broker "+stream, "--log-stream-names", stream,
				"--filter-pattern", `{ $.msg = "starting tributary broker" }`)
			if err != nil {
				return err
			}
			if !strings.Contains(got.Events[0].Message, fmt.Sprintf(`"node_id":%d`, b.NodeID)) {
				return fmt.Errorf("stream %s holds another broker's start line: %s", stream, got.Events[0].Message)
			}
		}
		got, err := find("the audit entry of topic "+topic, "--log-stream-name-prefix", "broker-",
			"--filter-pattern", fmt.Sprintf(`{ $.log = "audit" && ($.resource = %[1]q || $.object = %[1]q) }`, topic))
		if err != nil {
			return err
		}
		e := got.Events[0]
		if !strings.HasSuffix(e.LogStreamName, "/audit") || !strings.Contains(e.Message, `"principal":"User:ANONYMOUS"`) || !strings.Contains(e.Message, `"client":"127.`) {
			return fmt.Errorf("the audit entry of %s is not a principal's and client's line in an audit stream: %s: %s", topic, e.LogStreamName, e.Message)
		}
		return nil
	}
}

// testAccCheckRoleMayLog checks the created broker role's policy allows
// writing to group's streams (and nothing else of CloudWatch Logs), or no
// logging at all.
func testAccCheckRoleMayLog(group string, may bool) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		rs, ok := s.RootModule().Resources[clusterResourceName]
		if !ok {
			return fmt.Errorf("%s not in state", clusterResourceName)
		}
		role := fleet.BrokerRoleName(rs.Primary.Attributes["cluster_id"], 1)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := accEnv.clients.IAM.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String("tributary-broker")})
		if err != nil {
			return fmt.Errorf("reading the broker role's policy: %w", err)
		}
		doc, err := url.QueryUnescape(aws.ToString(out.PolicyDocument))
		if err != nil {
			return err
		}
		has := strings.Contains(doc, "logs:PutLogEvents")
		if has != may {
			return fmt.Errorf("broker role may write logs = %v, want %v: %s", has, may, doc)
		}
		if may && (!strings.Contains(doc, "log-group:"+group+":*") || strings.Contains(doc, "log-group:*")) {
			return fmt.Errorf("broker role's logs permission is not limited to %s: %s", group, doc)
		}
		return nil
	}
}
