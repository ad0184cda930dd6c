package storage

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/storage/recordbatch"
)

const helperDirEnv = "TRIBUTARY_STORAGE_APPENDER_DIR"

// TestKill9KeepsAcknowledgedAppends runs appenders in a child process,
// kills it with SIGKILL mid-stream, reopens the log and checks that every
// append the child saw acknowledged is there, once, at its offset, in order.
// (kill -9 keeps the page cache; the fsync-before-ack guarantee against
// power loss rests on the group flush policy, documented, not testable here.)
func TestKill9KeepsAcknowledgedAppends(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperAppender$", "-test.v")
	cmd.Env = append(os.Environ(), helperDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]int64{} // value -> offset
	lines := bufio.NewScanner(out)
	deadline := time.Now().Add(30 * time.Second)
	for len(acked) < 2000 && time.Now().Before(deadline) && lines.Scan() {
		f := strings.Fields(lines.Text())
		if len(f) == 3 && f[0] == "acked" {
			off, _ := strconv.ParseInt(f[2], 10, 64)
			acked[f[1]] = off
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(acked) < 50 {
		t.Fatalf("child acknowledged only %d appends before the deadline", len(acked))
	}

	st := openStore(t, dir, Options{})
	p, ok := st.Partition("kill", 0)
	if !ok {
		t.Fatal("partition lost")
	}
	seen := map[string]int64{}
	next := int64(0)
	for _, h := range readAll(t, p, 0, p.HighWatermark()) {
		if h.BaseOffset != next {
			t.Fatalf("batch at %d after offset %d: the log has a hole or overlap", h.BaseOffset, next)
		}
		next = h.LastOffset() + 1
		b, err := p.Read(h.BaseOffset, 1, h.LastOffset()+1)
		if err != nil {
			t.Fatal(err)
		}
		err = forEachRecordOf(&h, b, func(r *recordbatch.Record) error {
			if _, dup := seen[string(r.Value)]; dup {
				return fmt.Errorf("value %s stored twice", r.Value)
			}
			seen[string(r.Value)] = h.BaseOffset + int64(r.OffsetDelta)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for v, off := range acked {
		got, ok := seen[v]
		if !ok {
			t.Fatalf("acknowledged append %s (offset %d) lost after kill -9", v, off)
		}
		if got != off {
			t.Fatalf("acknowledged append %s moved from offset %d to %d", v, off, got)
		}
	}
	t.Logf("%d acknowledged appends checked, %d records recovered", len(acked), len(seen))
}

// TestHelperAppender is the child of TestKill9KeepsAcknowledgedAppends; it
// does nothing in a normal run.
func TestHelperAppender(t *testing.T) {
	dir := os.Getenv(helperDirEnv)
	if dir == "" {
		t.Skip("child process of TestKill9KeepsAcknowledgedAppends")
	}
	st, err := Open(dir, Options{Logger: quietLogger(), CheckpointInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	p, err := st.CreatePartition("kill", 0, TopicConfig{SegmentBytes: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	stopAt := time.Now().Add(60 * time.Second) // bounded even if never killed
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100000 && time.Now().Before(stopAt); i++ {
				v := fmt.Sprintf("w%d-%d", w, i)
				b, err := encodeOneRecord([]byte(v))
				if err != nil {
					t.Error(err)
					return
				}
				res, err := p.Append(context.Background(), b, AppendOptions{})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				fmt.Printf("acked %s %d\n", v, res.BaseOffset)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// encodeOneRecord builds a one-record batch; unlike makeBatch it is safe in
// goroutines (it returns its error instead of failing the test).
func encodeOneRecord(value []byte) ([]byte, error) {
	rec := recordbatch.AppendNewRecord(nil, recordbatch.NewRecord{Key: []byte("k"), Value: value})
	return recordbatch.Encode(recordbatch.Header{
		PartitionLeaderEpoch: -1, BaseTimestamp: 1_700_000_000_000, MaxTimestamp: 1_700_000_000_000,
		ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, RecordCount: 1,
	}, rec)
}
