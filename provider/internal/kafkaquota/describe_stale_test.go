package kafkaquota

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/provider/internal/kafkaconn/kafkaconntest"
)

// TestDescribeWaitsForTheBrokersToAgree: quotas set and removed on three
// brokers; then the first broker asked, and broker 0 for its next two
// answers, answer as before the removal (kfake replays a
// DescribeClientQuotas answer that holds them), as brokers that have not
// applied it yet do. Describe asks every live broker until they agree, and
// reports no quota.
func TestDescribeWaitsForTheBrokersToAgree(t *testing.T) {
	c, conn := kafkaconntest.Kfake(t, 3)
	ad := &Admin{Conn: conn, PollInterval: 10 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := Entity{User: Default}
	want := map[string]float64{"producer_byte_rate": 64 << 10}
	if err := ad.Set(ctx, e, want); err != nil {
		t.Fatal(err)
	}
	if got, err := ad.Describe(ctx, e); err != nil || !maps.Equal(got, want) {
		t.Fatalf("Describe after Set: %v, %v", got, err)
	}
	cl, err := ad.Conn.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrDescribeClientQuotasRequest()
	req.Strict = true
	comp := kmsg.NewDescribeClientQuotasRequestComponent()
	comp.EntityType, comp.MatchType = "user", 1 // the default user
	req.Components = append(req.Components, comp)
	before, err := req.RequestWith(ctx, cl)
	if err != nil || len(before.Entries) != 1 {
		t.Fatalf("describing the quotas: %v, %+v", err, before)
	}
	if err := ad.Set(ctx, e, nil); err != nil {
		t.Fatal(err)
	}
	asked, staleOn0 := 0, 0
	c.ControlKey(int16(kmsg.DescribeClientQuotas), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		asked++
		switch {
		case asked == 1: // the first answer, whichever broker gives it
		case c.CurrentNode() == 0 && staleOn0 < 2:
			staleOn0++
		default:
			return nil, nil, false
		}
		resp := *before
		resp.SetVersion(kreq.GetVersion())
		return &resp, nil, true
	})
	if got, err := ad.Describe(ctx, e); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Describe of removed quotas some brokers still answer for: %v, %v; want ErrNotFound", got, err)
	}
	if staleOn0 != 2 {
		t.Errorf("broker 0 answered as before the removal %d times, want 2 (Describe asked each broker until they agreed)", staleOn0)
	}
}

// TestSetRemovesAKeyOneBrokerHasNotApplied: consumer_byte_rate is added
// to an entity's quotas; then the first broker asked, and broker 0 for its
// next two answers, answer as before (without it). Set to the producer
// rate alone must remove it: what to remove is read once every live broker
// agrees, not from the first answer (which left the key, and Set returned
// with nothing to change).
func TestSetRemovesAKeyOneBrokerHasNotApplied(t *testing.T) {
	c, conn := kafkaconntest.Kfake(t, 3)
	ad := &Admin{Conn: conn, PollInterval: 10 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := Entity{User: Default}
	producer := map[string]float64{"producer_byte_rate": 64 << 10}
	if err := ad.Set(ctx, e, producer); err != nil {
		t.Fatal(err)
	}
	cl, err := ad.Conn.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrDescribeClientQuotasRequest()
	req.Strict = true
	comp := kmsg.NewDescribeClientQuotasRequestComponent()
	comp.EntityType, comp.MatchType = "user", 1 // the default user
	req.Components = append(req.Components, comp)
	before, err := req.RequestWith(ctx, cl)
	if err != nil || len(before.Entries) != 1 {
		t.Fatalf("describing the quotas: %v, %+v", err, before)
	}
	if err := ad.Set(ctx, e, map[string]float64{"producer_byte_rate": 64 << 10, "consumer_byte_rate": 1 << 20}); err != nil {
		t.Fatal(err)
	}
	asked, staleOn0 := 0, 0
	c.ControlKey(int16(kmsg.DescribeClientQuotas), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		asked++
		switch {
		case asked == 1:
		case c.CurrentNode() == 0 && staleOn0 < 2:
			staleOn0++
		default:
			return nil, nil, false
		}
		resp := *before
		resp.SetVersion(kreq.GetVersion())
		return &resp, nil, true
	})
	if err := ad.Set(ctx, e, producer); err != nil {
		t.Fatal(err)
	}
	if got, err := ad.Describe(ctx, e); err != nil || !maps.Equal(got, producer) {
		t.Fatalf("quotas after Set to the producer rate alone: %v, %v; want %v", got, err, producer)
	}
}
