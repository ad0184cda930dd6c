package server

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

// TestConcurrentAdminAndData runs produce, fetch, metadata and admin
// changes (create, delete, grow, reconfigure topics, change broker configs)
// at the same time, for the race detector and for answers that stay
// within Kafka's error codes. It is short; run with -race.
func TestConcurrentAdminAndData(t *testing.T) {
	s := startServer(t)
	ctx := context.Background()
	topics := []string{"s0", "s1", "s2"}
	for _, name := range topics {
		if _, err := s.createTopic(name, 2, nil); err != nil {
			t.Fatal(err)
		}
	}
	allowed := map[int16]bool{
		0: true, kerr.UnknownTopicOrPartition.Code: true, kerr.NotLeaderForPartition.Code: true,
		kerr.UnknownTopicID.Code: true, kerr.OffsetOutOfRange.Code: true,
	}
	deadline := time.Now().Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	loop := func(name string, fn func(i int) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				if err := fn(i); err != nil {
					errs <- fmt.Errorf("%s: %w", name, err)
					return
				}
			}
		}()
	}
	loop("produce", func(i int) error {
		req := produceReq(topics[i%len(topics)], -1, batch(-1, -1, -1, 3, 20))
		req.Topics[0].Partitions[0].Partition = int32(i % 3)
		resp, err := s.handleProduce(ctx, anonymousAuth(s, 0), req)
		if err != nil {
			return err
		}
		if code := resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode; !allowed[code] {
			return fmt.Errorf("error %v", kerr.ErrorForCode(code))
		}
		return nil
	})
	loop("fetch", func(i int) error {
		f := fetchReq(topics[i%len(topics)], 0, 1<<20, 1<<20)
		f.MaxWaitMillis = 5
		f.SessionEpoch = int32(-1)
		for _, p := range s.handleFetch(ctx, anonymousAuth(s, 1), f, fetchQuota{}, fetchRead{}).Topics[0].Partitions {
			if !allowed[p.ErrorCode] {
				return fmt.Errorf("error %v", kerr.ErrorForCode(p.ErrorCode))
			}
		}
		return nil
	})
	loop("metadata", func(int) error {
		req := kmsg.NewPtrMetadataRequest()
		req.Version = 12
		s.handleMetadata(ctx, anonymousAuth(s, 3), req)
		return nil
	})
	loop("admin", func(i int) error {
		name := topics[i%len(topics)]
		switch i % 4 {
		case 0:
			_ = s.deleteTopic(context.Background(), name)
		case 1:
			_, _ = s.createTopic(name, 2, nil)
		case 2:
			_ = s.addPartitions(context.Background(), name, int32(3+i%5), nil)
		case 3:
			_ = s.setTopicConfigs(context.Background(), name, map[string]string{"retention.ms": fmt.Sprint(60000 + i)})
			node := metadata.ClusterDefault
			if i%8 == 3 {
				node = s.nodeID
			}
			s.alterBrokerConfigs(context.Background(), node, []configChange{{name: "log.retention.ms", value: ptrTo(fmt.Sprint(100000 + i))}}, false, false)
		}
		return nil
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func ptrTo(s string) *string { return &s }
