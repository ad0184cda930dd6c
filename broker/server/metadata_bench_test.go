package server

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/config"
)

// BenchmarkMetadataManyPartitions measures a full Metadata request (every
// topic) of a broker with one 5,000-partition topic, as the benchmark's
// many-partitions phase asks it: the response built and encoded.
func BenchmarkMetadataManyPartitions(b *testing.B) {
	s := startServer(b, func(c *config.Config) {
		if err := c.Set("log.flush.policy", "none"); err != nil {
			b.Fatal(err)
		}
	})
	if _, err := s.createTopic("many", 5000, nil); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	req := kmsg.NewPtrMetadataRequest()
	req.Version = 12
	var buf []byte
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := s.handleMetadata(ctx, anonymousAuth(s, 3), req)
		buf = encodeResponse(buf, 1, r)
	}
	b.ReportMetric(float64(len(buf)), "bytes/response")
}
