package ttlcache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestGetPutExpiryAndEviction(t *testing.T) {
	c := New[string, int](2)
	t0 := time.Unix(1000, 0)
	c.Put("a", 1, t0.Add(time.Minute))
	c.Put("b", 2, t0.Add(time.Second))
	if v, ok := c.Get("a", t0); !ok || v != 1 {
		t.Fatalf("a = %d %v", v, ok)
	}
	if _, ok := c.Get("b", t0.Add(time.Second)); ok {
		t.Fatal("b is returned at its expiry")
	}
	c.Put("b", 2, t0.Add(time.Minute))
	// a was used after b was first put, but b was put again since: a is
	// now the least recently used and goes when c arrives.
	c.Put("c", 3, t0.Add(time.Minute))
	if _, ok := c.Get("a", t0); ok {
		t.Fatal("a survived eviction")
	}
	if c.Len() != 2 {
		t.Fatalf("Len %d, want 2", c.Len())
	}
	for _, k := range []string{"b", "c"} {
		if _, ok := c.Get(k, t0); !ok {
			t.Fatalf("%s evicted", k)
		}
	}
}

func TestDoSharesOneRun(t *testing.T) {
	c := New[string, int](10)
	var runs atomic.Int32
	release := make(chan struct{})
	const callers = 20
	var wg sync.WaitGroup
	results := make(chan int, callers)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := c.Do(context.Background(), "k", time.Now, func() (int, time.Time, error) {
				runs.Add(1)
				<-release
				return 42, time.Now().Add(time.Minute), nil
			})
			if err != nil {
				t.Error(err)
			}
			results <- v
		}()
	}
	// Let the callers pile up behind the first run; the run is released
	// either way, so the test cannot hang.
	deadline := time.Now().Add(5 * time.Second)
	for runs.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(results)
	for v := range results {
		if v != 42 {
			t.Fatalf("got %d", v)
		}
	}
	// Callers that arrived after the run finished were served by the cache.
	if n := runs.Load(); n != 1 {
		t.Fatalf("fn ran %d times, want 1", n)
	}
}

func TestDoDoesNotCacheErrorsOrPastExpiry(t *testing.T) {
	c := New[string, int](10)
	boom := errors.New("boom")
	runs := 0
	fail := func() (int, time.Time, error) { runs++; return 0, time.Now().Add(time.Hour), boom }
	for range 2 {
		if _, err := c.Do(context.Background(), "k", time.Now, fail); !errors.Is(err, boom) {
			t.Fatalf("err %v", err)
		}
	}
	noCache := func() (int, time.Time, error) { runs++; return 1, time.Time{}, nil }
	for range 2 {
		if v, err := c.Do(context.Background(), "k", time.Now, noCache); err != nil || v != 1 {
			t.Fatalf("%d %v", v, err)
		}
	}
	if runs != 4 {
		t.Fatalf("fn ran %d times, want 4 (nothing cached)", runs)
	}
}

func TestDoWaiterRetriesAfterAnotherCallersCancellation(t *testing.T) {
	c := New[string, int](10)
	leaderCtx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	leaderDone := make(chan error, 1)
	go func() {
		_, err := c.Do(leaderCtx, "k", time.Now, func() (int, time.Time, error) {
			close(started)
			<-leaderCtx.Done()
			return 0, time.Time{}, leaderCtx.Err()
		})
		leaderDone <- err
	}()
	<-started
	waiterDone := make(chan int, 1)
	go func() {
		v, err := c.Do(context.Background(), "k", time.Now, func() (int, time.Time, error) {
			return 7, time.Now().Add(time.Minute), nil
		})
		if err != nil {
			t.Error(err)
		}
		waiterDone <- v
	}()
	cancel()
	if err := <-leaderDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("leader err %v", err)
	}
	select {
	case v := <-waiterDone:
		if v != 7 {
			t.Fatalf("waiter got %d, want its own run's 7", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiter did not finish")
	}
}
