package clienttest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// brokerProcess is a tributary-broker run process started by a test.
type brokerProcess struct {
	cmd     *exec.Cmd
	addr    string
	done    chan struct{}
	mu      sync.Mutex
	logs    []string
	exitErr error
}

// logged reports whether the broker logged a line containing s.
func (p *brokerProcess) logged(s string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.logs {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// listenerAddr is the bound address of a listener, from the broker's
// "listener" log line.
func (p *brokerProcess) listenerAddr(t *testing.T, name string) string {
	t.Helper()
	re := regexp.MustCompile(`msg=listener name=` + name + ` .*\baddr=(\S+)`)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.logs {
		if m := re.FindStringSubmatch(l); m != nil {
			return m[1]
		}
	}
	t.Fatalf("the broker logged no listener %s", name)
	return ""
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

// brokerBinary builds tributary-broker once per test binary run.
func brokerBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "tributary-clienttest-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "tributary-broker")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/tributary/tributary/broker/cmd/tributary-broker")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var servingRE = regexp.MustCompile(`msg="serving Kafka protocol" listen=(\S+)`)

// startProcess runs the broker binary on dataDir and waits until it serves.
func startProcess(t *testing.T, dataDir string) *brokerProcess {
	t.Helper()
	return startProcessArgs(t, "run", "--listen", "127.0.0.1:0", "--data-dir", dataDir)
}

// startProcessArgs runs the broker binary with args and waits until it serves.
func startProcessArgs(t *testing.T, args ...string) *brokerProcess {
	t.Helper()
	cmd := exec.Command(brokerBinary(t), args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &brokerProcess{cmd: cmd, done: make(chan struct{})}
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.logs = append(p.logs, sc.Text())
			p.mu.Unlock()
			if m := servingRE.FindStringSubmatch(sc.Text()); m != nil {
				addrCh <- m[1]
			}
			if os.Getenv("TRIBUTARY_TEST_LOG") != "" {
				fmt.Fprintln(os.Stderr, "broker:", sc.Text())
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		err := cmd.Wait()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	select {
	case p.addr = <-addrCh:
		return p
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		t.Fatalf("broker process exited before serving: %v\n%s", p.exitErr, strings.Join(p.logs, "\n"))
	case <-time.After(30 * time.Second):
		p.mu.Lock()
		defer p.mu.Unlock()
		t.Fatalf("broker process did not start serving within 30s; its log so far:\n%s", strings.Join(p.logs, "\n"))
	}
	return nil
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *brokerProcess) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

type ackedRecord struct {
	partition int32
	offset    int64
	value     string
}

// TestKill9DuringAckedProduces kills the broker process with SIGKILL while
// an idempotent acks=all producer streams records, restarts it, and checks
// that every acknowledged record is there, at its acknowledged offset, in
// order, exactly once.
func TestKill9DuringAckedProduces(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills a broker process")
	}
	dataDir := t.TempDir()
	p := startProcess(t, dataDir)
	{
		admCl, err := kgo.NewClient(kgo.SeedBrokers(p.addr))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := newAdmin(admCl).CreateTopic(testContext(t, 10*time.Second), 4, 1, nil, "kill9"); err != nil {
			t.Fatal(err)
		}
		admCl.Close()
	}

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(p.addr),
		kgo.DefaultProduceTopic("kill9"),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotence is on by default
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		kgo.ProducerLinger(time.Millisecond),
		kgo.RecordDeliveryTimeout(5*time.Second),
		kgo.RetryTimeout(5*time.Second),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	var (
		mu    sync.Mutex
		acked []ackedRecord
	)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for i := 0; ctx.Err() == nil && i < 1_000_000; i++ {
			r := &kgo.Record{Value: []byte(fmt.Sprintf("v-%07d", i))}
			cl.Produce(ctx, r, func(r *kgo.Record, err error) {
				if err != nil {
					return
				}
				mu.Lock()
				acked = append(acked, ackedRecord{r.Partition, r.Offset, string(r.Value)})
				mu.Unlock()
			})
		}
	}()
	// Kill once a good number of records is acknowledged (bounded).
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 3000 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.kill()
	stop()
	<-produced
	cl.Close() // waits for outstanding callbacks: nothing acks after this
	mu.Lock()
	final := append([]ackedRecord(nil), acked...)
	mu.Unlock()
	if len(final) == 0 {
		t.Fatal("no record was acknowledged before the kill")
	}

	p2 := startProcess(t, dataDir)
	got := map[int32]map[int64]string{}
	valuesSeen := map[string]int{}
	cons, err := kgo.NewClient(kgo.SeedBrokers(p2.addr), kgo.ConsumeTopics("kill9"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	// Read until every partition is at its high watermark.
	ends := listEnds(t, p2.addr, "kill9")
	readCtx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for !caughtUp(got, ends) {
		fs := cons.PollFetches(readCtx)
		if readCtx.Err() != nil {
			t.Fatalf("reading back timed out")
		}
		fs.EachError(func(tp string, part int32, err error) { t.Fatalf("fetch %s[%d]: %v", tp, part, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if got[r.Partition] == nil {
				got[r.Partition] = map[int64]string{}
			}
			got[r.Partition][r.Offset] = string(r.Value)
			valuesSeen[string(r.Value)]++
		})
	}
	for v, n := range valuesSeen {
		if n != 1 {
			t.Fatalf("value %s stored %d times", v, n)
		}
	}
	lastOffset := map[int32]int64{}
	for _, a := range final {
		if v, ok := got[a.partition][a.offset]; !ok || v != a.value {
			t.Fatalf("acknowledged %s at %d/%d, after restart the log has %q there (%d acknowledged)", a.value, a.partition, a.offset, v, len(final))
		}
		if last, ok := lastOffset[a.partition]; ok && a.offset <= last {
			// Acks of one partition come in offset order.
			t.Fatalf("acknowledgements out of order on partition %d", a.partition)
		}
		lastOffset[a.partition] = a.offset
	}
	t.Logf("%d acknowledged records all present after kill -9 and restart", len(final))
}

// listEnds returns the high watermark of every partition of a topic.
func listEnds(t *testing.T, addr, topic string) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := newAdmin(cl)
	ctx := testContext(t, 10*time.Second)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadmListedOffset) {
		if o.Err != nil {
			t.Fatalf("end offset %s[%d]: %v", o.Topic, o.Partition, o.Err)
		}
		out[o.Partition] = o.Offset
	})
	return out
}

func caughtUp(got map[int32]map[int64]string, ends map[int32]int64) bool {
	for p, end := range ends {
		if int64(len(got[p])) < end {
			return false
		}
	}
	return true
}
