package kafkaconn

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// LogFunc reports progress (tflog in the provider); may be nil.
type LogFunc func(ctx context.Context, msg string, attrs ...any)

// DefaultPollInterval is the delay between two checks of a wait.
const DefaultPollInterval = 500 * time.Millisecond

// Poll calls check until it reports done or ctx ends, logging each new
// status, and ends with the last status in the error.
func Poll(ctx context.Context, what string, interval time.Duration, log LogFunc, check func() (status string, done bool)) error {
	return PollOrFail(ctx, what, interval, log, func() (string, bool, error) {
		status, done := check()
		return status, done, nil
	})
}

// PollOrFail is Poll whose check may also end the wait at once with an
// error: a state that waiting cannot change.
func PollOrFail(ctx context.Context, what string, interval time.Duration, log LogFunc, check func() (status string, done bool, err error)) error {
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	var last string
	for {
		status, done, err := check()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if done {
			return nil
		}
		if status != last {
			if log != nil {
				log(ctx, "waiting for "+what, "status", status)
			}
			last = status
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last status: %s)", what, ctx.Err(), last)
		case <-time.After(interval):
		}
	}
}

// WaitEachBroker polls until check accepts the answer of every broker the
// cluster lists as live (a stopped broker is not waited for: it catches up
// from the metadata log when it returns). A change made through one broker
// reaches the others through the metadata log; waiting for each of them
// means that whatever a client asks next, any broker answers with the
// change. Each new status is logged.
func (c *Conn) WaitEachBroker(ctx context.Context, what string, interval time.Duration, log LogFunc, check func(ctx context.Context, b *kgo.Broker, id int32) (string, bool)) error {
	return c.WaitEachBrokerOrFail(ctx, what, interval, log, func(ctx context.Context, b *kgo.Broker, id int32) (string, bool, error) {
		status, ok := check(ctx, b, id)
		return status, ok, nil
	})
}

// WaitEachBrokerOrFail is WaitEachBroker whose check may also end the
// wait at once with an error.
func (c *Conn) WaitEachBrokerOrFail(ctx context.Context, what string, interval time.Duration, log LogFunc, check func(ctx context.Context, b *kgo.Broker, id int32) (string, bool, error)) error {
	cl, err := c.Client()
	if err != nil {
		return err
	}
	defer cl.Close()
	return PollOrFail(ctx, what, interval, log, func() (string, bool, error) {
		ids, err := LiveBrokers(ctx, cl)
		if err != nil {
			return err.Error(), false, nil
		}
		for _, id := range ids {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			status, ok, err := check(rctx, cl.Broker(int(id)), id)
			cancel()
			if err != nil || !ok {
				return status, false, err
			}
		}
		return "", true, nil
	})
}

// LiveBrokers asks the cluster which brokers are live.
func LiveBrokers(ctx context.Context, cl *kgo.Client) ([]int32, error) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{}
	resp, err := req.RequestWith(rctx, cl)
	if err != nil {
		return nil, fmt.Errorf("asking for the live brokers: %w", err)
	}
	ids := make([]int32, 0, len(resp.Brokers))
	for _, b := range resp.Brokers {
		ids = append(ids, b.NodeID)
	}
	slices.Sort(ids)
	return ids, nil
}

// AgreedAnswer asks every live broker through cl (ask, each bounded by 5
// s) until they all give the same answer (same), and returns it; ctx
// bounds the wait, whose error names the last disagreement. It is for a
// read that must not take one broker's word: each broker applies the
// metadata log in its own time, so one that has not applied a deletion
// made a moment ago (outside Terraform, or by the apply before) still
// answers as before it.
func AgreedAnswer[T any](ctx context.Context, cl *kgo.Client, what string, interval time.Duration, log LogFunc,
	ask func(ctx context.Context, b *kgo.Broker, id int32) (T, error), same func(a, b T) bool) (T, error) {
	var agreed T
	err := PollOrFail(ctx, "every broker to agree on "+what, interval, log, func() (string, bool, error) {
		ids, err := LiveBrokers(ctx, cl)
		if err != nil {
			return err.Error(), false, nil
		}
		answers := make([]T, 0, len(ids))
		for _, id := range ids {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			a, err := ask(rctx, cl.Broker(int(id)), id)
			cancel()
			if err != nil {
				return fmt.Sprintf("broker %d: %v", id, err), false, nil
			}
			if len(answers) > 0 && !same(answers[0], a) {
				return fmt.Sprintf("brokers %d and %d answer differently", ids[0], id), false, nil
			}
			answers = append(answers, a)
		}
		if len(answers) == 0 {
			return "no live broker", false, nil
		}
		agreed = answers[0]
		return "", true, nil
	})
	return agreed, err
}
