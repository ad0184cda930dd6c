package clienttest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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

// TestSIGTERMBeforeJoiningIsCleanStop stops a broker that is still waiting
// for its metadata quorum (its only peer voter never answers): a signal
// while starting is a clean stop, exit status 0, not a failure to start.
func TestSIGTERMBeforeJoiningIsCleanStop(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a broker process")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "broker.properties")
	conf := fmt.Sprintf("node.id=1\nlisteners=PLAINTEXT://127.0.0.1:0\nlog.dirs=%s\ncontroller.quorum.voters=1@%s,2@%s\n",
		filepath.Join(dir, "data"), freeLoopbackAddr(t), freeLoopbackAddr(t))
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(brokerBinary(t), "run", "--config", file)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	})
	// The quorum is bootstrapped and the broker waits to join it.
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "bootstrapped the metadata quorum") {
		if time.Now().After(deadline) {
			t.Fatalf("the broker did not start joining its cluster within 20s:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("SIGTERM while joining: %v, want exit status 0; output:\n%s", err, out.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("no exit within 15s of SIGTERM; output:\n%s", out.String())
	}
	if strings.Contains(out.String(), "cannot start") {
		t.Fatalf("a signal while starting is reported as a failure:\n%s", out.String())
	}
}

// syncBuffer is a bytes.Buffer safe for a process's output and a reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
