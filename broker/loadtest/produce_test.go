package loadtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestMain lets this test binary be the kfake child process that
// StartKfake runs, as the benchmark command is, and the CPU burner of
// TestCPUMeterCountsEachSide.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == burnCommand {
		if err := serveBurn(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if len(os.Args) > 1 && os.Args[1] == KfakeCommand {
		if err := ServeKfake(os.Args[2:], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func startKfake(t *testing.T, topic string) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, topic))
	if err != nil {
		t.Fatalf("starting kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func TestProduceCountsEveryAcknowledgedRecord(t *testing.T) {
	seeds := startKfake(t, "t")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Produce(ctx, seeds, ProduceOptions{Topic: "t", RecordBytes: 100, Duration: 20 * time.Second, MaxRecords: 500})
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != 500 || res.Bytes != 500*100 {
		t.Errorf("records, bytes = %d, %d; want 500, 50000", res.Records, res.Bytes)
	}
	if l := res.Latency; l.P50 <= 0 || l.P50 > l.P99 || l.P99 > l.P999 || l.P999 > l.Max || res.MiBps <= 0 {
		t.Errorf("implausible figures: %+v", res)
	}
}

// A warm-up runs the load untimed first: its records reach the topic but
// not the figures, and the new producer's first acknowledgement is timed
// there.
func TestProduceWarmupIsNotCounted(t *testing.T) {
	seeds := startKfake(t, "t")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const rate = 64 << 10 // 64 records of 1 KiB a second
	res, err := Produce(ctx, seeds, ProduceOptions{Topic: "t", RecordBytes: 1024, Duration: 500 * time.Millisecond, RateBytes: rate, Warmup: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != 32 {
		t.Errorf("records = %d, want the timed phase's 32", res.Records)
	}
	if res.FirstAck <= 0 {
		t.Errorf("first acknowledgement %v, want it timed", res.FirstAck)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total != 64 {
		t.Errorf("the topic holds %d records, want 32 of the warm-up and 32 timed", total)
	}
}

func TestProducePacedHoldsTheOfferedRate(t *testing.T) {
	seeds := startKfake(t, "t")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const rate = 256 << 10 // 256 records of 1 KiB a second
	duration := 2 * time.Second
	res, err := Produce(ctx, seeds, ProduceOptions{Topic: "t", RecordBytes: 1024, Duration: duration, RateBytes: rate})
	if err != nil {
		t.Fatal(err)
	}
	// The pacer never runs ahead of the schedule; a loaded machine may
	// make it fall behind, but not by half.
	offered := int64(rate / 1024 * duration.Seconds())
	if res.Records > offered+1 || res.Records < offered/2 {
		t.Errorf("produced %d records at a %d/s pace for %v, want about %d", res.Records, rate/1024, duration, offered)
	}
}

func TestSummarizeCountsStalls(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	var samples []time.Duration
	for i := range 1000 {
		samples = append(samples, ms(1+i%5))
	}
	// Three stalls, one exactly at the threshold (not a stall).
	samples = append(samples, StallThreshold, StallThreshold+time.Microsecond, ms(700), ms(3200))
	l := Summarize(samples)
	if l.Stalls != 3 {
		t.Errorf("stalls = %d, want 3", l.Stalls)
	}
	if l.Max != ms(3200) {
		t.Errorf("max = %v, want 3.2s", l.Max)
	}
	if l.P50 != ms(3) || l.P99 != ms(5) {
		t.Errorf("p50, p99 = %v, %v; want 3ms, 5ms", l.P50, l.P99)
	}
	if l.P999 < StallThreshold {
		t.Errorf("p99.9 = %v: four slow samples in 1004 must reach it", l.P999)
	}
	if got := Summarize(nil); got != (Latency{}) {
		t.Errorf("no samples: %+v", got)
	}
}

// kfake runs in a process of its own; the benchmark's clients reach it
// there and it goes away when closed.
func TestKfakeInItsOwnProcess(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k, err := StartKfake(ctx, self, 3, "t", 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(k.Addrs) != 3 {
		t.Fatalf("addresses %v, want 3", k.Addrs)
	}
	res, err := Produce(ctx, k.Addrs, ProduceOptions{Topic: "t", RecordBytes: 100, Duration: 20 * time.Second, MaxRecords: 200})
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != 200 {
		t.Errorf("records = %d, want 200", res.Records)
	}
	pid := k.cmd.Process.Pid
	k.Close()
	if err := k.cmd.ProcessState; err == nil || !err.Exited() {
		t.Errorf("kfake process %d still running after Close", pid)
	}
}

// TestThroughputWithCompression: Options.Compression is the codec of the
// batches the producer sends, and Options.TopicConfigs the topic's
// configs, so a run can measure a broker re-compressing what it is sent.
// An unknown codec is refused before anything is produced.
func TestThroughputWithCompression(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	addr := c.ListenAddrs()[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ct := "lz4"
	res, err := Throughput(ctx, addr, Options{Topic: "z", Partitions: 2, RecordBytes: 100, Duration: 20 * time.Second, MaxRecords: 200,
		Compression: "zstd", TopicConfigs: map[string]*string{"compression.type": &ct}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Produce.Records != 200 {
		t.Fatalf("produced %d records, want 200", res.Produce.Records)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	rc, err := adm.DescribeTopicConfigs(ctx, "z")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := rc.On("z", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := ""
	for _, c := range cfg.Configs {
		if c.Key == "compression.type" && c.Value != nil {
			got = *c.Value
		}
	}
	if got != "lz4" {
		t.Errorf("topic compression.type %q, want lz4", got)
	}
	// kfake stores batches as sent: each record's attributes say what
	// the producer used.
	cons, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("z"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	for read := 0; read < 200; {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of 200 records: %v", read, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if codec := r.Attrs.CompressionType(); codec != 4 {
				t.Fatalf("record at %d[%d] sent in codec %d, want zstd (4)", r.Partition, r.Offset, codec)
			}
			read++
		})
	}
	if _, err := Produce(ctx, []string{addr}, ProduceOptions{Topic: "z", RecordBytes: 100, Duration: time.Second, MaxRecords: 1, Compression: "brotli"}); err == nil || !strings.Contains(err.Error(), "brotli") {
		t.Errorf("producer compression brotli: err %v, want one naming it", err)
	}
}

// A server that dies mid-phase (kfake once killed for memory) fails the
// phase within flushTimeout of its end: before, the producer's full
// buffer blocked Produce for as long as the whole run's context.
func TestProduceEndsWhenTheServerDies(t *testing.T) {
	defer func(d time.Duration) { flushTimeout = d }(flushTimeout)
	flushTimeout = 2 * time.Second
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.AfterFunc(300*time.Millisecond, c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	_, err = Produce(ctx, c.ListenAddrs(), ProduceOptions{Topic: "t", RecordBytes: 1000, Duration: time.Second, Linger: ThroughputLinger})
	if err == nil {
		t.Fatal("a phase whose server died passed")
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Fatalf("the phase took %v to fail (%v), want about its second and the 2 s flush bound", took, err)
	}
	t.Logf("failed after %v: %v", time.Since(start), err)
}
