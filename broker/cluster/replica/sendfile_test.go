package replica

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/security/tlsconf/tlstest"
	"github.com/tributary/tributary/broker/storage"
)

// countingLog is a storage partition that counts the reads of its batches
// into memory of their own and into pooled memory.
type countingLog struct {
	*storage.Partition
	reads, pooled atomic.Int32
}

func (c *countingLog) Read(offset int64, maxBytes int32, upTo int64) ([]byte, error) {
	c.reads.Add(1)
	return c.Partition.Read(offset, maxBytes, upTo)
}

func (c *countingLog) ReadInto(offset int64, maxBytes int32, upTo int64, rb *storage.ReadBuffers) ([]byte, error) {
	c.pooled.Add(1)
	return c.Partition.ReadInto(offset, maxBytes, upTo, rb)
}

// TestReplicationListenerSendsBatchesFromFiles: on a plaintext
// replication listener a follower's fetch gets its batches from the
// segment files by sendfile, not read into the leader's memory, and they
// are the leader's bytes; over TLS they are read, as they must be to be
// encrypted, into the connection's pooled memory.
func TestReplicationListenerSendsBatchesFromFiles(t *testing.T) {
	ctx := context.Background()
	part, err := openStore(t).CreatePartition(tp0.Topic, 0, storage.TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	log := &countingLog{Partition: part}
	for i := range 20 {
		if _, err := part.Append(ctx, produced(t, 50, -1, 0, fmt.Sprint("v", i)), storage.AppendOptions{LeaderEpoch: 5}); err != nil {
			t.Fatal(err)
		}
	}
	want, err := part.Read(0, 1<<20, part.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewLeader(LeaderConfig{LocalID: 1}, metadata.Partition{Replicas: []int32{1, 2}, Leader: 1, LeaderEpoch: 5, ISR: []int32{1, 2}}, part.LogEndOffset(), 0)
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(topic string, partition int32) (*Leader, LeaderLog, bool) {
		if topic != tp0.Topic || partition != 0 {
			return nil, nil, false
		}
		return tr, log, true
	}
	ca, err := tlstest.NewCA("replica test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue("127.0.0.1", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := leaf.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		listen func() net.Listener
		dial   func(serverName string) *tls.Config
		reads  int32 // into memory of their own
		pooled int32
	}{
		{"plaintext", func() net.Listener {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			return ln
		}, nil, 0, 0},
		{"tls", func() net.Listener {
			ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
			if err != nil {
				t.Fatal(err)
			}
			return ln
		}, func(string) *tls.Config { return &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"} }, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := ServeReplication(tc.listen(), lookup, nil, nil, nil, slog.New(slog.DiscardHandler))
			defer srv.Close()
			var served atomic.Int64
			srv.OnFetch(func(_ time.Duration, _, records int) { served.Add(int64(records)) })
			c, err := dialLeader(ctx, srv.Addr(), "test", tc.dial)
			if err != nil {
				t.Fatal(err)
			}
			defer c.close()
			before, pooledBefore := log.reads.Load(), log.pooled.Load()
			r, err := c.request(fetchReq(5, 0, -1, 0), 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			rp := r.(*kmsg.FetchResponse).Topics[0].Partitions[0]
			if rp.ErrorCode != 0 || !bytes.Equal(rp.RecordBatches, want) {
				t.Fatalf("code %d, %d record bytes, want the leader's %d", rp.ErrorCode, len(rp.RecordBatches), len(want))
			}
			if n, p := log.reads.Load()-before, log.pooled.Load()-pooledBefore; n != tc.reads || p != tc.pooled {
				t.Fatalf("the batches were read into memory of their own %d times and into pooled memory %d times, want %d and %d", n, p, tc.reads, tc.pooled)
			}
			// The observer is told after the response is written, so
			// possibly after the follower has read it.
			for deadline := time.Now().Add(5 * time.Second); served.Load() != int64(len(want)) && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			if n := served.Load(); n != int64(len(want)) {
				t.Fatalf("the fetch observer was told of %d record bytes, sent %d", n, len(want))
			}
			// The connection goes on: a second fetch, from the middle.
			r, err = c.request(fetchReq(5, 500, -1, 0), 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if rp := r.(*kmsg.FetchResponse).Topics[0].Partitions[0]; rp.ErrorCode != 0 || !bytes.HasSuffix(want, rp.RecordBatches) || len(rp.RecordBatches) == 0 {
				t.Fatalf("second fetch: code %d, %d record bytes, not the end of the leader's log", rp.ErrorCode, len(rp.RecordBatches))
			}
		})
	}
}

// In a fetch session the partitions without news are left out of the
// response: the batches of those after them, sent from their files, must
// follow them to their new places.
func TestSessionResponseKeepsFileBatchesInPlace(t *testing.T) {
	ctx := context.Background()
	store := openStore(t)
	logs := map[int32]*storage.Partition{}
	trackers := map[int32]*Leader{}
	for _, i := range []int32{0, 1} {
		part, err := store.CreatePartition(tp0.Topic, i, storage.TopicConfig{})
		if err != nil {
			t.Fatal(err)
		}
		for j := range 5 {
			if _, err := part.Append(ctx, produced(t, 10, -1, 0, fmt.Sprint("p", i, "v", j)), storage.AppendOptions{LeaderEpoch: 5}); err != nil {
				t.Fatal(err)
			}
		}
		tr, err := NewLeader(LeaderConfig{LocalID: 1}, metadata.Partition{Replicas: []int32{1, 2}, Leader: 1, LeaderEpoch: 5, ISR: []int32{1, 2}}, part.LogEndOffset(), 0)
		if err != nil {
			t.Fatal(err)
		}
		logs[i], trackers[i] = part, tr
	}
	want, err := logs[1].Read(0, 1<<20, logs[1].LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(topic string, partition int32) (*Leader, LeaderLog, bool) {
		if topic != tp0.Topic || logs[partition] == nil {
			return nil, nil, false
		}
		return trackers[partition], logs[partition], true
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := ServeReplication(ln, lookup, nil, nil, nil, slog.New(slog.DiscardHandler))
	defer srv.Close()
	c, err := dialLeader(ctx, srv.Addr(), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	fetch := func(id, epoch int32, offsets ...int64) *kmsg.FetchResponse {
		t.Helper()
		req := fetchReq(5, offsets[0], -1, 0)
		req.SessionID, req.SessionEpoch = id, epoch
		req.Topics[0].Partitions = req.Topics[0].Partitions[:0]
		for i, off := range offsets {
			if off < 0 {
				continue
			}
			p := kmsg.NewFetchRequestTopicPartition()
			p.Partition, p.CurrentLeaderEpoch, p.FetchOffset, p.LastFetchedEpoch, p.PartitionMaxBytes = int32(i), 5, off, -1, 1<<20
			req.Topics[0].Partitions = append(req.Topics[0].Partitions, p)
		}
		if len(req.Topics[0].Partitions) == 0 {
			req.Topics = nil
		}
		r, err := c.request(req, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return r.(*kmsg.FetchResponse)
	}
	end0, end1 := logs[0].LogEndOffset(), logs[1].LogEndOffset()
	id := fetch(0, 0, end0, end1).SessionID
	if id == 0 {
		t.Fatal("no session")
	}
	// Partition 1 fetched again from 0 (a follower that started over):
	// partition 0, before it in the session, has no news.
	resp := fetch(id, 1, -1, 0)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("answered %q, want partition 1 alone", answered(resp))
	}
	if rp := resp.Topics[0].Partitions[0]; rp.Partition != 1 || rp.ErrorCode != 0 || !bytes.Equal(rp.RecordBatches, want) {
		t.Fatalf("partition %d: code %d, %d record bytes, want partition 1's %d", rp.Partition, rp.ErrorCode, len(rp.RecordBatches), len(want))
	}
}
