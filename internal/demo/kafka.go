package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// clusterSeeds returns the addresses to bootstrap from. Brokers that do not
// form one cluster (each lists only itself in its metadata) cannot serve a
// client bootstrapped from all of them; then the demo uses the first broker
// alone and says so.
func clusterSeeds(ctx context.Context, bootstrap []string) ([]string, string, error) {
	for _, addr := range bootstrap {
		n, err := brokersKnownBy(ctx, addr)
		if err != nil {
			return nil, "", fmt.Errorf("asking %s for metadata: %w", addr, err)
		}
		if n < len(bootstrap) {
			return bootstrap[:1], fmt.Sprintf("broker %s lists %d of %d brokers: this broker build does not cluster yet, so the demo talks to %s alone",
				addr, n, len(bootstrap), bootstrap[0]), nil
		}
	}
	return bootstrap, "", nil
}

func brokersKnownBy(ctx context.Context, addr string) (int, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
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

// createTopic creates the demo topic, replicated three ways when the brokers
// can replicate, unreplicated otherwise; an existing topic is fine. A cluster
// that just formed may refuse three replicas for a few seconds.
func createTopic(ctx context.Context, seeds []string, clustered bool) (int16, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(30 * time.Second)
	for rf := int16(3); ; {
		resp, err := adm.CreateTopic(ctx, 3, rf, nil, topic)
		if err == nil {
			err = resp.Err
		}
		switch {
		case err == nil, errors.Is(err, kerr.TopicAlreadyExists):
			return rf, nil
		case !errors.Is(err, kerr.InvalidReplicationFactor) || rf == 1:
			return 0, fmt.Errorf("creating topic %s: %w (%s)", topic, err, resp.ErrMessage)
		case !clustered || time.Now().After(deadline):
			rf = 1
		default:
			time.Sleep(500 * time.Millisecond)
		}
	}
}

// produce writes the records with acks=all and returns when the first one
// was acknowledged and when all were.
func produce(ctx context.Context, seeds []string, runID string) (first time.Time, err error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordDeliveryTimeout(60*time.Second))
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
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
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
