package storage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestDeletePartition: one partition of a topic goes, its siblings stay;
// a fetch already holding its files sends them whole during
// file.delete.delay.ms, and the directory is gone after it; reads, appends
// and follower writes after the deletion fail with ErrClosed; a second
// deletion is ErrUnknownTopicOrPartition; the partition created again
// starts empty, and after a restart the old data does not come back.
func TestDeletePartition(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir, Options{})
	cfg := TopicConfig{SegmentBytes: 1000, FileDeleteDelay: 200 * time.Millisecond}
	gone := mustCreate(t, st, "t", 0, cfg)
	kept := mustCreate(t, st, "t", 1, cfg)
	for range 20 {
		mustAppend(t, gone, makeBatch(t, batchSpec{records: 2, valueSize: 100}))
		mustAppend(t, kept, makeBatch(t, batchSpec{records: 2, valueSize: 100}))
	}
	want, err := gone.Read(0, 1<<20, gone.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	slices, ok, err := gone.ReadSlices(0, 1<<20, gone.LogEndOffset())
	if err != nil || !ok {
		t.Fatalf("ok %v, %v", ok, err)
	}

	if err := st.DeletePartition("t", 0); err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Partition("t", 0); ok {
		t.Fatal("deleted partition still listed")
	}
	if _, err := os.Stat(filepath.Join(dir, "t-0")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("t-0 still under its name after DeletePartition: %v", err)
	}
	if got := sendSlices(t, slices); !bytes.Equal(got, want) {
		t.Fatalf("a fetch sending from the deleted partition's files got %d bytes, want %d", len(got), len(want))
	}
	if _, err := gone.Read(0, 1<<20, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after deletion: %v, want ErrClosed", err)
	}
	if _, err := gone.Append(context.Background(), makeBatch(t, batchSpec{}), AppendOptions{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after deletion: %v, want ErrClosed", err)
	}
	if _, err := gone.WriteAsFollower(want[:len(want)/20]); !errors.Is(err, ErrClosed) {
		t.Fatalf("follower write after deletion: %v, want ErrClosed", err)
	}
	if err := st.DeletePartition("t", 0); !errors.Is(err, ErrUnknownTopicOrPartition) {
		t.Fatalf("deleting twice: %v, want ErrUnknownTopicOrPartition", err)
	}
	waitUntil(t, "the deleted partition's files to go", 10*time.Second, func() bool {
		segs, bytes := st.PendingDeletion()
		return len(deletedFiles(t, dir)) == 0 && segs == 0 && bytes == 0
	})
	if got := readAll(t, kept, 0, kept.LogEndOffset()); len(got) != 20 {
		t.Fatalf("the other partition holds %d batches, want 20", len(got))
	}

	again := mustCreate(t, st, "t", 0, cfg)
	if again.LogEndOffset() != 0 {
		t.Fatalf("re-created partition starts at %d", again.LogEndOffset())
	}
	mustAppend(t, again, makeBatch(t, batchSpec{records: 3}))
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st2 := openStore(t, dir, Options{})
	if p, ok := st2.Partition("t", 0); !ok || p.LogEndOffset() != 3 {
		t.Fatal("the re-created partition is not what came back at restart")
	}
	if p, ok := st2.Partition("t", 1); !ok || p.LogEndOffset() != 40 {
		t.Fatal("the other partition did not come back whole")
	}
}

// TestDeletePartitionUnderConcurrentUse: appends, follower-style reads and
// sendfile reads racing a DeletePartition end with ErrClosed (or succeed
// before it), never a panic or another error. Run with -race.
func TestDeletePartitionUnderConcurrentUse(t *testing.T) {
	st := openStore(t, t.TempDir(), Options{})
	p := mustCreate(t, st, "t", 0, TopicConfig{SegmentBytes: 4000, FileDeleteDelay: NoFileDeleteDelay})
	batch := makeBatch(t, batchSpec{records: 2, valueSize: 100})
	for range 10 {
		mustAppend(t, p, batch)
	}
	stop := make(chan struct{})
	errs := make(chan error, 64)
	var wg sync.WaitGroup
	work := []func() error{
		func() error {
			_, err := p.Append(context.Background(), batch, AppendOptions{})
			return err
		},
		func() error {
			_, err := p.Read(0, 1<<16, p.LogEndOffset())
			return err
		},
		func() error {
			_, _, err := p.ReadSlices(0, 1<<16, p.LogEndOffset())
			return err
		},
	}
	for _, fn := range work {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := fn(); err != nil {
					if !errors.Is(err, ErrClosed) {
						errs <- err
					}
					return
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	if err := st.DeletePartition("t", 0); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(stop)
	close(errs)
	for err := range errs {
		t.Errorf("racing the deletion: %v, want ErrClosed", err)
	}
}
