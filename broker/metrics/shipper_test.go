package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/smithy-go"
)

// fakeCloudWatch answers PutMetricData from a script of errors (nil =
// success; the last entry repeats) and records what it was sent.
type fakeCloudWatch struct {
	mu     sync.Mutex
	script []error
	calls  []*cloudwatch.PutMetricDataInput
	block  bool // wait for the caller's context instead of answering
}

func (f *fakeCloudWatch) PutMetricData(ctx context.Context, in *cloudwatch.PutMetricDataInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error) {
	f.mu.Lock()
	f.calls = append(f.calls, in)
	var err error
	if len(f.script) > 0 {
		err = f.script[0]
		if len(f.script) > 1 {
			f.script = f.script[1:]
		}
	}
	block := f.block
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	return &cloudwatch.PutMetricDataOutput{}, nil
}

func (f *fakeCloudWatch) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func (f *fakeCloudWatch) setScript(errs ...error) {
	f.mu.Lock()
	f.script = errs
	f.mu.Unlock()
}

var (
	errThrottled = &smithy.GenericAPIError{Code: "Throttling", Message: "Rate exceeded"}
	errDenied    = &smithy.GenericAPIError{Code: "AccessDenied", Message: "User: arn:aws:sts::000000000000:assumed-role/broker/i-1 is not authorized to perform: cloudwatch:PutMetricData"}
	errInvalid   = &smithy.GenericAPIError{Code: "InvalidParameterValue", Message: "bad"}
)

func newTestShipper(t *testing.T, r *Registry, client CloudWatchAPI, log *slog.Logger) *Shipper {
	t.Helper()
	s, err := NewShipper(ShipperOptions{Registry: r, Client: client, Namespace: "Tributary/Kafka", Level: LevelDefault,
		Interval: time.Minute, Logger: log, MaxAttempts: 4, BaseBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestShipperRetriesThrottling(t *testing.T) {
	cases := []struct {
		name               string
		script             []error
		wantCalls          int
		wantErr            bool
		wantThrottled      int64
		wantShippedNonZero bool
		wantDroppedNonZero bool
		wantWarn           int
	}{
		{"throttled twice then accepted", []error{errThrottled, errThrottled, nil}, 3, false, 2, true, false, 0},
		{"throttled past the attempts", []error{errThrottled}, 4, true, 4, false, true, 1},
		{"invalid data is not retried", []error{errInvalid}, 1, true, 0, false, true, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, _ := newTestRegistry(t)
			fake := &fakeCloudWatch{script: c.script}
			logs := &logRecorder{}
			s := newTestShipper(t, r, fake, logs.logger())
			err := s.Ship(context.Background())
			if (err != nil) != c.wantErr {
				t.Fatalf("Ship: %v", err)
			}
			st := s.Stats()
			if fake.callCount() != c.wantCalls || st.Throttled != c.wantThrottled || (st.Shipped > 0) != c.wantShippedNonZero || (st.Dropped > 0) != c.wantDroppedNonZero {
				t.Errorf("calls %d, stats %+v", fake.callCount(), st)
			}
			if n := logs.count(slog.LevelWarn, "dropping metric data"); n != c.wantWarn {
				t.Errorf("%d drop warnings, want %d", n, c.wantWarn)
			}
		})
	}
}

// TestShipperAccessDeniedLoggedOnce: a role without cloudwatch:PutMetricData
// is reported once at error level, not every interval; the rest of the
// shipment is not attempted; a later success is reported and a new denial
// is reported again.
func TestShipperAccessDeniedLoggedOnce(t *testing.T) {
	r, _ := newTestRegistry(t)
	for i := range 600 { // two batches at DEFAULT: 1,200 topic data and the broker's
		r.RecordProduce(fmt.Sprintf("topic-%03d", i), 1, 1)
	}
	fake := &fakeCloudWatch{script: []error{errDenied}}
	logs := &logRecorder{}
	s := newTestShipper(t, r, fake, logs.logger())
	for range 3 {
		if err := s.Ship(context.Background()); !errors.Is(err, errDenied) {
			t.Fatalf("Ship: %v, want the denial", err)
		}
	}
	if n := fake.callCount(); n != 3 {
		t.Errorf("%d calls for 3 denied shipments: the second batch should not be tried", n)
	}
	if n := logs.count(slog.LevelError, "cloudwatch:PutMetricData"); n != 1 {
		t.Errorf("denial logged %d times at error level, want once", n)
	}
	st := s.Stats()
	if st.Denied != 3 || st.Shipped != 0 || st.Dropped < 3*1200 {
		t.Errorf("stats %+v", st)
	}

	fake.setScript(nil)
	if err := s.Ship(context.Background()); err != nil {
		t.Fatalf("Ship after the permission was granted: %v", err)
	}
	if n := logs.count(slog.LevelInfo, "accepts the broker's metrics again"); n != 1 {
		t.Errorf("recovery logged %d times", n)
	}
	fake.setScript(errDenied)
	_ = s.Ship(context.Background())
	if n := logs.count(slog.LevelError, "cloudwatch:PutMetricData"); n != 2 {
		t.Errorf("a new denial after a success logged %d times in all, want 2", n)
	}
}

// TestShipperRunStopsOnCancel: Run ships every interval and returns when
// its context ends, even while a call hangs.
func TestShipperRunStopsOnCancel(t *testing.T) {
	r, _ := newTestRegistry(t)
	fake := &fakeCloudWatch{}
	s, err := NewShipper(ShipperOptions{Registry: r, Client: fake, Namespace: "Tributary/Kafka", Interval: 20 * time.Millisecond, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for fake.callCount() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no two shipments in 10 s at a 20 ms interval")
		}
		time.Sleep(5 * time.Millisecond)
	}
	fake.mu.Lock()
	fake.block = true // the next call hangs until its context ends
	fake.mu.Unlock()
	before := fake.callCount()
	for fake.callCount() == before {
		if time.Now().After(deadline) {
			t.Fatal("no hanging call started")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// TestShipperBoundsAHangingCall: a call that never answers is abandoned
// at half the interval, so shipments never pile up.
func TestShipperBoundsAHangingCall(t *testing.T) {
	r, _ := newTestRegistry(t)
	fake := &fakeCloudWatch{block: true}
	s, err := NewShipper(ShipperOptions{Registry: r, Client: fake, Namespace: "Tributary/Kafka", Interval: 100 * time.Millisecond, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Dropped == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the hanging call was never given up")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
}

func TestNewShipperChecksOptions(t *testing.T) {
	r, _ := newTestRegistry(t)
	for name, o := range map[string]ShipperOptions{
		"no registry":  {Client: &fakeCloudWatch{}, Namespace: "N"},
		"no client":    {Registry: r, Namespace: "N"},
		"no namespace": {Registry: r, Client: &fakeCloudWatch{}},
	} {
		if _, err := NewShipper(o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
