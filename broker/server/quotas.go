package server

// Client quotas in force (package broker/quota): after each request the
// connection's client (its principal's user name and its client.id) is
// measured against producer_byte_rate (the bytes of a Produce request),
// consumer_byte_rate (the bytes of a Fetch response) and
// request_percentage (the time the request was handled, outside waits for
// data or a rebalance). When the client went over, the response carries
// the throttle time in throttle_time_ms (the largest of the three), and
// the connection is muted for that long, as Kafka does (KIP-219): the
// response is sent at once, then no further request of the connection is
// read or processed until the throttle time has passed. A response of a
// version from before KIP-219 (a client that does not back off by itself)
// is held for the throttle time instead. A connection from an IP address
// over its connection_creation_rate is held unserved for the throttle
// time, then closed (listeners.go).

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/broker/metrics"
	"github.com/tributary/tributary/broker/quota"
)

// newQuotas builds the quota manager from the settings.
func newQuotas(cfg *config.Config) *quota.Manager {
	return quota.NewManager(quota.Config{Samples: cfg.QuotaWindowNum, Window: time.Duration(cfg.QuotaWindowSizeSeconds) * time.Second}, nil)
}

// quotaExempt are the requests no client quota counts nor throttles: those
// a client needs to learn our versions and to authenticate, as in Kafka.
func quotaExempt(key int16) bool {
	return key == apiVersionsKey || key == saslHandshakeKey || key == saslAuthenticateKey
}

// quotaWaits are the APIs whose handling is mostly parked waiting for
// other group members; their time is not request-handling time.
func quotaWaits(key int16) bool { return key == 11 || key == 14 } // JoinGroup, SyncGroup

// quotaUser is the user name client quotas know the connection's principal
// by: the name of User:name (ANONYMOUS for an unauthenticated client).
func (c *conn) quotaUser() string {
	return strings.TrimPrefix(c.principal, "User:")
}

// parkedKey carries, in a request's context, the time its handler spent
// parked waiting (a Fetch long poll), which is not request-handling time.
type parkedKey struct{}

func withParked(ctx context.Context, p *atomic.Int64) context.Context {
	return context.WithValue(ctx, parkedKey{}, p)
}

// addParked adds d to the request's parked time.
func addParked(ctx context.Context, d time.Duration) {
	if p, ok := ctx.Value(parkedKey{}).(*atomic.Int64); ok {
		p.Add(int64(d))
	}
}

// quotaThrottle measures one answered request against the client's quotas
// and returns its throttle time (0 within every quota). resp is nil for a
// Produce with acks=0; handled is the request-handling time.
func (s *Server) quotaThrottle(c *conn, req *request, resp kmsg.Response, files fetchFiles, handled time.Duration) time.Duration {
	key, size := req.key, req.size
	if quotaExempt(key) {
		s.metrics.RecordExemptRequest(handled)
		return 0
	}
	user, client := c.quotaUser(), req.clientID
	var d time.Duration
	switch key {
	case produceAPI.key:
		if s.quotas.Limited(quota.Produce) {
			d = s.quotas.Record(quota.Produce, user, client, float64(size))
			s.metrics.RecordQuotaBytes(metrics.ThrottleProduce, size)
			s.metrics.RecordThrottle(metrics.ThrottleProduce, d)
		}
	case fetchAPI.key:
		// The fetch handler measured its response (fetchQuota): a
		// throttled one carries its throttle time and no records.
		if fr, ok := resp.(*kmsg.FetchResponse); ok {
			d = time.Duration(fr.ThrottleMillis) * time.Millisecond
			if s.quotas.Limited(quota.Fetch) {
				s.metrics.RecordQuotaBytes(metrics.ThrottleFetch, fetchResponseBytes(fr, files))
			}
			s.metrics.RecordThrottle(metrics.ThrottleFetch, d)
		}
	}
	if s.quotas.Limited(quota.Request) && !quotaWaits(key) {
		rd := s.quotas.Record(quota.Request, user, client, quota.Percent(handled))
		s.metrics.RecordThrottle(metrics.ThrottleRequest, rd)
		d = max(d, rd)
	}
	return d
}

// fetchQuota measures a Fetch response against its client's
// consumer_byte_rate before it is sent, so that a response over the quota
// is sent without its records. A nil manager (a handler called outside a
// connection) measures nothing.
type fetchQuota struct {
	m            *quota.Manager
	user, client string
}

// maxBytes is the largest response the quota lets through at once.
func (fq fetchQuota) maxBytes() (int64, bool) {
	if fq.m == nil {
		return 0, false
	}
	most, ok := fq.m.MaxInWindow(quota.Fetch, fq.user, fq.client)
	return int64(min(most, 1<<31-1)), ok
}

// record counts resp against the quota; over it, resp is not to be sent
// (sent false) and d is the throttle time.
func (fq fetchQuota) record(resp *kmsg.FetchResponse, files fetchFiles) (d time.Duration, sent bool) {
	if fq.m == nil || !fq.m.Limited(quota.Fetch) {
		return 0, true
	}
	return fq.m.RecordUnlessThrottled(quota.Fetch, fq.user, fq.client, float64(fetchResponseBytes(resp, files)))
}

// fetchResponseBytes is the size of a fetch response: its record batches,
// which are nearly all of it (in memory or in files), and the framing of
// each topic and partition.
func fetchResponseBytes(fr *kmsg.FetchResponse, files fetchFiles) int {
	n := 16
	for i := range fr.Topics {
		t := &fr.Topics[i]
		n += len(t.Topic) + 24
		for j := range t.Partitions {
			n += files.bytes(t, &t.Partitions[j]) + 48
		}
	}
	return n
}

// setThrottle puts d in resp's throttle_time_ms, unless resp already
// carries a longer one. It reports whether the client backs off by itself
// after such a response (KIP-219 versions); when not, the server holds the
// response for d instead.
func setThrottle(resp kmsg.Response, d time.Duration) (clientBacksOff bool) {
	tr, ok := resp.(kmsg.ThrottleResponse)
	if !ok {
		return false
	}
	have, after := tr.Throttle()
	ms := int32(min(d.Milliseconds(), int64(1<<31-1)))
	if ms > have {
		if st, ok := resp.(kmsg.SetThrottleResponse); ok {
			st.SetThrottle(ms)
		}
	}
	return after
}

// mute stops the connection for d: nothing more is processed, and the
// reader reads no further request (beyond one it already waits for),
// until d has passed. It returns false when the connection ends first.
func (c *conn) mute(d time.Duration) bool {
	if d <= 0 {
		return true
	}
	until := time.Now().Add(d)
	c.mutedUntil.Store(until.UnixNano())
	return c.waitUnmuted()
}

// waitUnmuted waits while the connection is muted; false when it ends
// meanwhile.
func (c *conn) waitUnmuted() bool {
	wait := time.Until(time.Unix(0, c.mutedUntil.Load()))
	if wait <= 0 {
		return true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.ctx.Done():
		return false
	}
}
