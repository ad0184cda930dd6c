package oauthbearer_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/iamauth"
	"github.com/tributary/tributary/broker/iamauth/saramaauth"
	"github.com/tributary/tributary/broker/security/oauthbearer"
	"github.com/tributary/tributary/broker/security/sasl"
	"github.com/tributary/tributary/broker/security/sasl/sasltest"
	"github.com/tributary/tributary/internal/localcloud/awsapitest"
	"github.com/tributary/tributary/internal/localcloud/iam"
	"github.com/tributary/tributary/internal/localcloud/sts"
	"github.com/tributary/tributary/internal/testenv"
)

const (
	clusterID  = "orders"
	rolePrinc  = "User:arn:aws:iam::000000000000:role/consumer"
	rootPrinc  = "User:arn:aws:iam::000000000000:root"
	brokerBinE = "TRIBUTARY_BROKER_BINARY"
)

type iamEnv struct {
	cloud   *awsapitest.Cloud
	session aws.Config
	broker  *sasltest.Broker
}

// startIAM starts the local cloud's IAM and STS and a SASL double serving
// OAUTHBEARER with the iamauth verifier for clusterID.
func startIAM(t *testing.T) iamEnv {
	t.Helper()
	c := awsapitest.Start(t)
	iamSvc, err := iam.New(c.Env(""))
	if err != nil {
		t.Fatal(err)
	}
	stsSvc, err := sts.New(c.Env(""), iamSvc)
	if err != nil {
		t.Fatal(err)
	}
	c.Server.Register("iam", iamSvc)
	c.Server.Register("sts", stsSvc)
	c.Server.SetAuthorizer(iamSvc)
	role := awsapitest.CreateRole(t, awsiam.NewFromConfig(c.Root()), "consumer", awsapitest.TrustAccount)
	session, _ := c.AssumeRole(t, aws.ToString(role.Arn), 3600)
	ctx := context.Background()
	verifier, err := iamauth.NewVerifier(ctx, c.Root(), iamauth.VerifierOptions{ClusterID: clusterID})
	if err != nil {
		t.Fatal(err)
	}
	mech := oauthbearer.NewServer(func(ctx context.Context, tok string, _ map[string]string) (sasl.Result, error) {
		id, err := verifier.Verify(ctx, tok)
		if err != nil {
			return sasl.Result{}, err
		}
		return sasl.Result{Principal: id.KafkaPrincipal(), SessionLifetime: id.SessionLifetime}, nil
	})
	return iamEnv{cloud: c, session: session, broker: sasltest.Start(t, sasltest.Options{}, mech)}
}

func TestFranzGoAndSaramaWithIAMTokens(t *testing.T) {
	env := startIAM(t)
	t.Run("franz-go", func(t *testing.T) {
		for _, tt := range []struct {
			cluster string
			want    error
		}{{clusterID, nil}, {"payments", iamauth.ErrWrongCluster}} {
			env.broker.Skip()
			cl, err := kgo.NewClient(kgo.SeedBrokers(env.broker.Addr), kgo.SASL(iamauth.FranzGoMechanism(env.session, tt.cluster)))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			_, reqErr := cl.Request(ctx, kmsg.NewPtrMetadataRequest())
			cancel()
			cl.Close()
			o := env.broker.Next(t, 10*time.Second)
			if !errors.Is(o.Err, tt.want) {
				t.Fatalf("%s: outcome %+v, want %v", tt.cluster, o, tt.want)
			}
			if tt.want == nil {
				if reqErr != nil || o.Result.Principal != rolePrinc || o.Result.SessionLifetime < 14*time.Minute {
					t.Fatalf("%v, %+v", reqErr, o.Result)
				}
				continue
			}
			// The client is told why: SASL_AUTHENTICATION_FAILED with the
			// verifier's reason, not a closed connection.
			if !errors.Is(reqErr, kerr.SaslAuthenticationFailed) || !strings.Contains(reqErr.Error(), "another cluster") {
				t.Fatalf("client error %v", reqErr)
			}
		}
	})
	t.Run("sarama", func(t *testing.T) {
		for _, tt := range []struct {
			cluster string
			want    error
		}{{clusterID, nil}, {"payments", iamauth.ErrWrongCluster}} {
			env.broker.Skip()
			conf := sarama.NewConfig()
			conf.Net.SASL.Enable = true
			conf.Net.SASL.Mechanism = sarama.SASLTypeOAuth
			conf.Net.SASL.TokenProvider = saramaauth.New(env.session, tt.cluster)
			conf.Metadata.Retry.Max = 0
			conf.Net.DialTimeout, conf.Net.ReadTimeout = 5*time.Second, 5*time.Second
			cl, err := sarama.NewClient([]string{env.broker.Addr}, conf)
			if cl != nil {
				cl.Close()
			}
			o := env.broker.Next(t, 10*time.Second)
			if !errors.Is(o.Err, tt.want) {
				t.Fatalf("%s: outcome %+v, want %v", tt.cluster, o, tt.want)
			}
			if tt.want == nil && (err != nil || o.Result.Principal != rolePrinc) {
				t.Fatalf("sarama: %v, %+v", err, o.Result)
			}
			if tt.want != nil && err == nil {
				t.Fatal("sarama connected with a token for another cluster")
			}
		}
	})
}

// TestLibrdkafkaAndPythonWithIAMTokens: confluent-kafka's oauth_cb and
// kafka-python's token provider run `tributary-broker iam-token`, with
// nothing but the environment pointing the SDK at the local cloud.
func TestLibrdkafkaAndPythonWithIAMTokens(t *testing.T) {
	bin := testenv.Binary(t, brokerBinE, "a built tributary-broker (go build -o bin/tributary-broker ./broker/cmd/tributary-broker)")
	python := "/usr/bin/python3"
	for _, mod := range [][2]string{{"kafka", "python3-kafka"}, {"confluent_kafka", "python3-confluent-kafka"}} {
		if err := exec.Command(python, "-c", "import "+mod[0]).Run(); err != nil {
			testenv.Missing(t, "python module %s not installed (Debian package %s): run make tools", mod[0], mod[1])
		}
	}
	env := startIAM(t)
	confluent := `
import json, subprocess, sys
def oauth_cb(config):
    out = json.loads(subprocess.check_output([sys.argv[2], "iam-token", "--cluster-id", sys.argv[3], "--region", "us-east-1", "--json"]))
    return out["token"], out["expiry_ms"] / 1000.0
from confluent_kafka.admin import AdminClient
a = AdminClient({"bootstrap.servers": sys.argv[1], "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "OAUTHBEARER",
                 "oauth_cb": oauth_cb})
a.poll(1)  # librdkafka calls oauth_cb from poll, not on its own
print(a.list_topics(timeout=8).cluster_id)
`
	kafkaPython := `
import subprocess, sys, time
from kafka.client_async import KafkaClient
from kafka.oauth.abstract import AbstractTokenProvider
from kafka.protocol.metadata import MetadataRequest
class IAM(AbstractTokenProvider):
    def token(self):
        return subprocess.check_output([sys.argv[2], "iam-token", "--cluster-id", sys.argv[3], "--region", "us-east-1"]).decode().strip()
c = KafkaClient(bootstrap_servers=sys.argv[1], security_protocol="SASL_PLAINTEXT", sasl_mechanism="OAUTHBEARER",
                sasl_oauth_token_provider=IAM(), api_version=(2, 5, 0))
deadline = time.time() + 8
node = c.least_loaded_node()
while not c.ready(node):
    if time.time() > deadline:
        sys.exit("not ready: the login failed")
    c.poll(timeout_ms=100)
f = c.send(node, MetadataRequest[1](topics=None))
while not f.is_done:
    if time.time() > deadline:
        sys.exit("no metadata")
    c.poll(timeout_ms=100)
if f.failed():
    sys.exit(str(f.exception))
print("metadata", f.value)
`
	creds, err := env.session.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	environ := append(os.Environ(),
		"AWS_ENDPOINT_URL_STS="+env.cloud.URL, "AWS_ACCESS_KEY_ID="+creds.AccessKeyID, "AWS_SECRET_ACCESS_KEY="+creds.SecretAccessKey,
		"AWS_SESSION_TOKEN="+creds.SessionToken, "AWS_CONFIG_FILE="+t.TempDir()+"/none", "AWS_SHARED_CREDENTIALS_FILE="+t.TempDir()+"/none",
		"AWS_PROFILE=", "AWS_EC2_METADATA_DISABLED=true")
	for _, client := range []struct{ name, script string }{{"confluent-kafka", confluent}, {"kafka-python", kafkaPython}} {
		for _, tt := range []struct {
			cluster string
			want    error
		}{{clusterID, nil}, {"payments", iamauth.ErrWrongCluster}} {
			t.Run(client.name+"/"+tt.cluster, func(t *testing.T) {
				env.broker.Skip()
				cmd := exec.Command(python, "-c", client.script, env.broker.Addr, bin, tt.cluster)
				cmd.Env = environ
				out, err := run(t, cmd, 30*time.Second)
				t.Logf("client output: %s", out)
				o := env.broker.Next(t, 5*time.Second)
				if !errors.Is(o.Err, tt.want) {
					t.Fatalf("outcome %+v, want %v (client: %s)", o, tt.want, out)
				}
				if tt.want == nil && (err != nil || o.Result.Principal != rolePrinc || env.broker.MetadataRequests(rolePrinc) == 0) {
					t.Fatalf("%v, %+v: %s", err, o.Result, out)
				}
				if tt.want != nil && err == nil {
					t.Fatalf("logged in with a token for another cluster: %s", out)
				}
			})
		}
	}
}

func run(t *testing.T, cmd *exec.Cmd, d time.Duration) (string, error) {
	t.Helper()
	done := make(chan struct{})
	var out []byte
	var err error
	go func() {
		out, err = cmd.CombinedOutput()
		close(done)
	}()
	select {
	case <-done:
		return string(out), err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not finish within %v: %s", cmd.Path, d, out)
		return "", nil
	}
}
