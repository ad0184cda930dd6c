package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/tributary/tributary/broker/iamauth"
	"github.com/tributary/tributary/internal/awsbody"
)

// iamTokenMain is `tributary-broker iam-token`: it prints a fresh IAM
// OAUTHBEARER token for a cluster, made with the AWS SDK's default
// credential chain, for clients that cannot link broker/iamauth:
// librdkafka's oauthbearer_token_refresh_cb (confluent-kafka's oauth_cb)
// and kafka-python's token provider run it and read stdout.
func iamTokenMain(args []string) int {
	return iamToken(context.Background(), args, os.Stdout, os.Stderr)
}

func iamToken(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tributary-broker iam-token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	clusterID := fs.String("cluster-id", "", "id of the cluster the token is for (required)")
	region := fs.String("region", "", "AWS region of the cluster's STS endpoint (default: AWS_REGION or the profile's)")
	asJSON := fs.Bool("json", false, `print {"token":...,"expiry_ms":...} instead of the bare token`)
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: tributary-broker iam-token --cluster-id ID [--region R] [--json]

Prints a SASL/OAUTHBEARER token proving the caller's AWS IAM identity to the
brokers of cluster ID, valid for 15 minutes at most. Credentials and the STS
endpoint come from the AWS SDK's defaults (AWS_PROFILE, AWS_ENDPOINT_URL_STS,
instance role, ...).`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || *clusterID == "" {
		fs.Usage()
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var opts []func(*config.LoadOptions) error
	if *region != "" {
		opts = append(opts, config.WithRegion(*region))
	}
	cfg, err := awsbody.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		fmt.Fprintf(stderr, "tributary-broker iam-token: loading the AWS configuration: %v\n", err)
		return 1
	}
	tok, err := iamauth.NewToken(ctx, cfg, *clusterID)
	if err != nil {
		fmt.Fprintf(stderr, "tributary-broker iam-token: %v\n", err)
		return 1
	}
	if !*asJSON {
		fmt.Fprintln(stdout, tok.Value)
		return 0
	}
	out, err := json.Marshal(struct {
		Token    string `json:"token"`
		ExpiryMs int64  `json:"expiry_ms"`
	}{tok.Value, tok.Expiry.UnixMilli()})
	if err != nil {
		fmt.Fprintf(stderr, "tributary-broker iam-token: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, string(out))
	return 0
}
