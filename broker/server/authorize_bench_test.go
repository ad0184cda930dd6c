package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/cluster/metadata"
	"github.com/tributary/tributary/broker/config"
)

// benchACLs are n ACLs as a busy cluster has them: most for other
// principals and topics, some on the benchmark's topic for others, and
// the PREFIXED ALLOWs that let User:ANONYMOUS read and write bench-*.
func benchACLs(n int) []metadata.ACL {
	var out []metadata.ACL
	for i := 0; len(out) < n-2; i++ {
		a := topicACL(fmt.Sprintf("topic-%d", i), []kmsg.ACLOperation{kmsg.ACLOperationRead, kmsg.ACLOperationWrite}[i%2])
		a.Principal = fmt.Sprintf("User:app-%d", i%500)
		if i%20 == 0 { // others' ACLs on the same topic
			a.ResourceName, a.Principal = "bench-t", fmt.Sprintf("User:other-%d", i)
		}
		out = append(out, a)
	}
	for _, op := range []kmsg.ACLOperation{kmsg.ACLOperationWrite, kmsg.ACLOperationRead} {
		a := topicACL("bench-", op)
		a.PatternType, a.Principal = kmsg.ACLResourcePatternTypePrefixed, anonymous
		out = append(out, a)
	}
	return out
}

// benchServer is a broker with topic bench-t, flushing to the OS only (the
// benchmark measures the request path, not the disk), and acls.
func benchServer(b *testing.B, acls int) *Server {
	b.Helper()
	s := startServer(b, func(c *config.Config) {
		must := func(k, v string) {
			if err := c.Set(k, v); err != nil {
				b.Fatal(err)
			}
		}
		must("log.flush.policy", "none")
		if acls > 0 {
			must("allow.everyone.if.no.acl.found", "false")
		}
	})
	if _, err := s.createTopic("bench-t", 1, nil); err != nil {
		b.Fatal(err)
	}
	if acls > 0 {
		if err := s.meta.CreateACLs(context.Background(), benchACLs(acls)); err != nil {
			b.Fatal(err)
		}
		if n := s.meta.ACLs().Len(); n != acls {
			b.Fatalf("%d ACLs, want %d", n, acls)
		}
	}
	return s
}

// interleaved runs one request on a broker without ACLs and on one with
// 1,000, alternately, and reports each's time per request: a machine
// whose load changes during the benchmark slows both alike.
func interleaved(b *testing.B, run func(s *Server)) {
	b.Helper()
	servers := []*Server{benchServer(b, 0), benchServer(b, 1000)}
	var spent [2]time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		// Alternate which goes first, so neither always runs on a cache
		// the other warmed.
		for j := range 2 {
			k := (i + j) % 2
			start := time.Now()
			run(servers[k])
			spent[k] += time.Since(start)
		}
	}
	b.ReportMetric(float64(spent[0].Nanoseconds())/float64(b.N), "ns/req(acls=0)")
	b.ReportMetric(float64(spent[1].Nanoseconds())/float64(b.N), "ns/req(acls=1000)")
}

// BenchmarkProduceAuthorized is one Produce request (one batch of 10
// records of 100 bytes, acks=1) through the handler, as a principal the
// ACLs allow, with no ACL at all (allow.everyone.if.no.acl.found) and with
// 1,000 (the principal's PREFIXED ALLOW among them).
func BenchmarkProduceAuthorized(b *testing.B) {
	ctx := context.Background()
	req := produceReq("bench-t", 1, batch(-1, -1, -1, 10, 100))
	interleaved(b, func(s *Server) {
		resp, err := s.handleProduce(ctx, anonymousAuth(s, 0), req)
		if err != nil {
			b.Fatal(err)
		}
		if c := resp.(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode; c != 0 {
			b.Fatal(kerr.ErrorForCode(c))
		}
	})
}

// BenchmarkFetchAuthorized is one Fetch request (sessionless, from offset
// 0 of a partition holding 20 batches, up to 64 KiB) through the handler,
// with no ACL and with 1,000.
func BenchmarkFetchAuthorized(b *testing.B) {
	ctx := context.Background()
	f := fetchReq("bench-t", 0, 64<<10, 64<<10)
	f.MaxWaitMillis, f.SessionEpoch = 0, -1
	filled := map[*Server]bool{}
	interleaved(b, func(s *Server) {
		if !filled[s] {
			filled[s] = true
			for range 20 {
				if _, err := s.handleProduce(ctx, anonymousAuth(s, 0), produceReq("bench-t", 1, batch(-1, -1, -1, 10, 100))); err != nil {
					b.Fatal(err)
				}
			}
		}
		p := s.handleFetch(ctx, anonymousAuth(s, 1), f, fetchQuota{}, fetchRead{}).Topics[0].Partitions[0]
		if p.ErrorCode != 0 || len(p.RecordBatches) == 0 {
			b.Fatalf("fetch: %v, %d bytes", kerr.ErrorForCode(p.ErrorCode), len(p.RecordBatches))
		}
	})
}

// BenchmarkAuthorizeRequest is the authorization of one Produce request
// alone (WRITE on its topic, audit included), the part of the benchmarks
// above that the ACLs change.
func BenchmarkAuthorizeRequest(b *testing.B) {
	for _, n := range []int{0, 1000} {
		b.Run(fmt.Sprintf("acls=%d", n), func(b *testing.B) {
			s := benchServer(b, n)
			az := anonymousAuth(s, 0)
			names := []string{"bench-t"}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if d := az.denied(ctx, kmsg.ACLOperationWrite, kmsg.ACLResourceTypeTopic, names); d != nil {
					b.Fatal("denied")
				}
			}
		})
	}
}
