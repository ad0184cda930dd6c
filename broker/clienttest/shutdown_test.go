package clienttest

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestSIGTERMShutsDownCleanly stops a broker process with SIGTERM while a
// consumer long-polls it: the process answers, flushes, exits 0 promptly,
// and the next start finds a clean log with every record.
func TestSIGTERMShutsDownCleanly(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a broker process")
	}
	dataDir := t.TempDir()
	p := startProcess(t, dataDir)
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.addr), kgo.DefaultProduceTopic("term"), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produceSync(t, cl, "term", 50, "t")

	// A consumer parked in a long poll (kgo waits up to 5 s per fetch).
	cons, err := kgo.NewClient(kgo.SeedBrokers(p.addr), kgo.ConsumeTopics("term"), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()), kgo.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	pollCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go cons.PollFetches(pollCtx)
	time.Sleep(300 * time.Millisecond) // let the fetch reach the broker

	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatal("broker did not exit within 15s of SIGTERM")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("shutdown took %v with a long poll in flight; want it woken at once", took)
	}
	p.mu.Lock()
	exitErr := p.exitErr
	p.mu.Unlock()
	if exitErr != nil {
		t.Fatalf("exit: %v", exitErr)
	}
	if !p.logged("shutdown complete") {
		t.Fatal(`no "shutdown complete" log line`)
	}

	p2 := startProcess(t, dataDir)
	if !p2.logged("clean_shutdown=true") {
		t.Fatal("the log was not closed cleanly")
	}
	if got := flatten(consumeAll(t, p2.addr, "term", 50)); len(got) != 50 {
		t.Fatalf("%d records after restart, want 50", len(got))
	}
}
