package replica

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

func fetchReq(epoch int32, offset int64, lastEpoch int32, wait time.Duration) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(fetchVersion)
	req.ReplicaID = 2
	req.MaxWaitMillis = int32(wait.Milliseconds())
	req.MinBytes = 1
	t := kmsg.NewFetchRequestTopic()
	t.Topic = tp0.Topic
	p := kmsg.NewFetchRequestTopicPartition()
	p.Partition, p.CurrentLeaderEpoch, p.FetchOffset, p.LastFetchedEpoch, p.PartitionMaxBytes = 0, epoch, offset, lastEpoch, 1<<20
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	return req
}

func TestHandleFetch(t *testing.T) {
	log := &memLog{}
	log.appendLeader(t, 3, 5, "x") // 0-4 at epoch 3
	tr, err := NewLeader(LeaderConfig{LocalID: 1}, metadata.Partition{Replicas: []int32{1, 2}, Leader: 1, LeaderEpoch: 5, ISR: []int32{1, 2}}, log.LogEndOffset(), 0)
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(topic string, partition int32) (*Leader, LeaderLog, bool) {
		if topic != tp0.Topic || partition != 0 {
			return nil, nil, false
		}
		return tr, log, true
	}
	part := func(r *kmsg.FetchResponse) kmsg.FetchResponseTopicPartition { return r.Topics[0].Partitions[0] }
	tests := []struct {
		name      string
		req       *kmsg.FetchRequest
		code      int16
		diverging int32
		records   bool
	}{
		{"fenced epoch", fetchReq(4, 0, -1, 0), kerr.FencedLeaderEpoch.Code, -1, false},
		{"unknown epoch", fetchReq(6, 0, -1, 0), kerr.UnknownLeaderEpoch.Code, -1, false},
		{"out of range", fetchReq(5, 9, -1, 0), kerr.OffsetOutOfRange.Code, -1, false},
		{"diverged", fetchReq(5, 5, 4, 0), 0, 3, false},
		{"data", fetchReq(5, 0, -1, 0), 0, -1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rp := part(HandleFetch(context.Background(), tt.req, lookup, nil))
			if rp.ErrorCode != tt.code || rp.DivergingEpoch.Epoch != tt.diverging || (len(rp.RecordBatches) > 0) != tt.records {
				t.Fatalf("got code %d diverging %+v %d record bytes", rp.ErrorCode, rp.DivergingEpoch, len(rp.RecordBatches))
			}
		})
	}
	other := fetchReq(5, 0, -1, 0)
	other.Topics[0].Topic = "nope"
	if rp := part(HandleFetch(context.Background(), other, lookup, nil)); rp.ErrorCode != kerr.NotLeaderForPartition.Code {
		t.Fatalf("unknown partition: code %d", rp.ErrorCode)
	}

	// A follower at the end long-polls and is woken by the next append,
	// well before MaxWait.
	done := make(chan kmsg.FetchResponseTopicPartition, 1)
	start := time.Now()
	go func() {
		done <- part(HandleFetch(context.Background(), fetchReq(5, 5, 3, 10*time.Second), lookup, nil))
	}()
	time.Sleep(50 * time.Millisecond)
	log.appendLeader(t, 5, 2, "y")
	tr.Appended(log.LogEndOffset())
	select {
	case rp := <-done:
		if len(rp.RecordBatches) == 0 || rp.HighWatermark != 5 {
			t.Fatalf("woken fetch: %d bytes, hw %d", len(rp.RecordBatches), rp.HighWatermark)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Fatalf("long poll not woken by the append: %v", took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long poll never returned")
	}
}
