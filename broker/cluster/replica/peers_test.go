package replica

import (
	"context"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestInterBrokerAPIsThroughPeers: an inter-broker API given to the
// replication listener is advertised there and answered to Peers, over
// reused connections; a version outside its range closes the connection.
func TestInterBrokerAPIsThroughPeers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32 // the server goroutine counts, the test reads: the socket orders them, the race detector cannot see that
	srv := ServeReplication(ln, func(string, int32) (*Leader, LeaderLog, bool) { return nil, nil, false }, nil,
		map[int16]InterBrokerAPI{27: {Min: 0, Max: 1, Handle: func(_ context.Context, r kmsg.Request) kmsg.Response {
			calls.Add(1)
			req := r.(*kmsg.WriteTxnMarkersRequest)
			resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
			for _, m := range req.Markers {
				rm := kmsg.NewWriteTxnMarkersResponseMarker()
				rm.ProducerID = m.ProducerID
				for _, tp := range m.Topics {
					rt := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
					rt.Topic = tp.Topic
					for _, p := range tp.Partitions {
						rp := kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
						rp.Partition, rp.ErrorCode = p, kerr.NotLeaderForPartition.Code
						rt.Partitions = append(rt.Partitions, rp)
					}
					rm.Topics = append(rm.Topics, rt)
				}
				resp.Markers = append(resp.Markers, rm)
			}
			return resp
		}}}, nil, slog.New(slog.DiscardHandler))
	t.Cleanup(srv.Close)
	peers := NewPeers("test", nil)
	t.Cleanup(peers.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	av := kmsg.NewPtrApiVersionsRequest()
	av.Version = 3
	av.ClientSoftwareName, av.ClientSoftwareVersion = "test", "1"
	resp, err := peers.Request(ctx, srv.Addr(), av)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, k := range resp.(*kmsg.ApiVersionsResponse).ApiKeys {
		if k.ApiKey == 27 && k.MinVersion == 0 && k.MaxVersion == 1 {
			found = true
		}
	}
	if !found {
		t.Fatalf("WriteTxnMarkers not advertised: %+v", resp.(*kmsg.ApiVersionsResponse).ApiKeys)
	}
	for range 3 {
		req := kmsg.NewPtrWriteTxnMarkersRequest()
		req.Version = 1
		m := kmsg.NewWriteTxnMarkersRequestMarker()
		m.ProducerID = 42
		tp := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
		tp.Topic, tp.Partitions = "t", []int32{3}
		m.Topics = append(m.Topics, tp)
		req.Markers = append(req.Markers, m)
		r, err := peers.Request(ctx, srv.Addr(), req)
		if err != nil {
			t.Fatal(err)
		}
		got := r.(*kmsg.WriteTxnMarkersResponse)
		if len(got.Markers) != 1 || got.Markers[0].ProducerID != 42 || got.Markers[0].Topics[0].Partitions[0].ErrorCode != kerr.NotLeaderForPartition.Code {
			t.Fatalf("response %+v", got)
		}
	}
	if calls.Load() != 3 {
		t.Fatalf("handler called %d times, want 3", calls.Load())
	}
	if n := len(peers.idle[srv.Addr()]); n != 1 {
		t.Fatalf("%d idle connections after sequential requests, want 1 reused", n)
	}
	bad := kmsg.NewPtrWriteTxnMarkersRequest()
	bad.Version = 2
	if _, err := peers.Request(ctx, srv.Addr(), bad); err == nil {
		t.Fatal("a version outside the range was answered")
	}
}
