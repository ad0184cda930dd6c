package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/iamauth"
)

// clientAuth is how the demo's clients reach the brokers: TLS, trusting
// the cluster CA, and SASL/OAUTHBEARER with an IAM token of the local
// cloud's test credentials (connectAs).
var clientAuth []kgo.Opt

// connectAs makes the clients trust the cluster CA, check the brokers'
// addresses against their certificates, and authenticate to cluster
// clusterID with the IAM identity of the local cloud's test credentials:
// a fresh token, presigned for the local cloud's STS, on every connection.
func connectAs(caPEM, clusterID string) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(caPEM)) {
		return errors.New("certificate_authority_pem holds no certificate")
	}
	if err := iamauth.ValidateClusterID(clusterID); err != nil {
		return fmt.Errorf("the cluster_id output: %w", err)
	}
	awsCfg := aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider(accessKey, secretKey, ""),
		BaseEndpoint: aws.String(endpoint),
	}
	clientAuth = []kgo.Opt{
		kgo.DialTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}),
		kgo.SASL(iamauth.FranzGoMechanism(awsCfg, clusterID)),
	}
	return nil
}

// checkCluster fails unless every broker lists every other: the provider
// waited for that before it finished the apply, so anything else is a
// broken cluster, and a demo on part of it would hide that.
func checkCluster(ctx context.Context, bootstrap []string) error {
	for _, addr := range bootstrap {
		n, err := brokersKnownBy(ctx, addr)
		if err != nil {
			return fmt.Errorf("asking %s for metadata: %w", addr, err)
		}
		if n != len(bootstrap) {
			return fmt.Errorf("broker %s lists %d of the %d brokers: they did not form one cluster (the local cloud's state and log are in .cache/demo)",
				addr, n, len(bootstrap))
		}
	}
	return nil
}

func brokersKnownBy(ctx context.Context, addr string) (int, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, clientAuth...)...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	seeds := cl.SeedBrokers()
	if len(seeds) == 0 {
		return 0, errors.New("no seed broker")
	}
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{}
	resp, err := seeds[0].Request(ctx, req)
	if err != nil {
		return 0, err
	}
	return len(resp.(*kmsg.MetadataResponse).Brokers), nil
}

// produce writes the records with acks=all and returns when the first one
// was acknowledged and when all were.
func produce(ctx context.Context, seeds []string, runID string) (first time.Time, err error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordDeliveryTimeout(60 * time.Second)}, clientAuth...)...)
	if err != nil {
		return time.Time{}, err
	}
	defer cl.Close()
	var once sync.Once
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for i := range records {
		wg.Add(1)
		rec := &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i)), Value: []byte(fmt.Sprintf("%s-%04d", runID, i))}
		cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				return
			}
			once.Do(func() { first = time.Now() })
		})
	}
	wg.Wait()
	return first, firstErr
}

// consume reads the topic from the start until it saw every record of this run.
func consume(ctx context.Context, seeds []string, runID string) (int, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, clientAuth...)...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	seen := map[string]bool{}
	for len(seen) < records {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return len(seen), fmt.Errorf("consumed %d of %d records: %w", len(seen), records, ctx.Err())
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if strings.HasPrefix(string(r.Value), runID+"-") {
				seen[string(r.Value)] = true
			}
		})
	}
	return len(seen), nil
}
