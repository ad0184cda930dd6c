package loadtest

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

func startKfake(t *testing.T, topic string) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, topic))
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func TestProduceCountsEveryAcknowledgedRecord(t *testing.T) {
	seeds := startKfake(t, "t")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Produce(ctx, seeds, ProduceOptions{Topic: "t", RecordBytes: 100, Duration: 20 * time.Second, MaxRecords: 500})
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != 500 || res.Bytes != 500*100 {
		t.Errorf("records, bytes = %d, %d; want 500, 50000", res.Records, res.Bytes)
	}
	if res.P50 <= 0 || res.P50 > res.P99 || res.MBps <= 0 {
		t.Errorf("implausible figures: %+v", res)
	}
}

func TestProducePacedHoldsTheOfferedRate(t *testing.T) {
	seeds := startKfake(t, "t")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const rate = 256 << 10 // 256 records of 1 KiB a second
	duration := 2 * time.Second
	res, err := Produce(ctx, seeds, ProduceOptions{Topic: "t", RecordBytes: 1024, Duration: duration, RateBytes: rate})
	if err != nil {
		t.Fatal(err)
	}
	// The pacer never runs ahead of the schedule; a loaded machine may
	// make it fall behind, but not by half.
	offered := int64(rate / 1024 * duration.Seconds())
	if res.Records > offered+1 || res.Records < offered/2 {
		t.Errorf("produced %d records at a %d/s pace for %v, want about %d", res.Records, rate/1024, duration, offered)
	}
}
