package storage

import (
	"errors"
	"fmt"
	"sync"
	"testing"
)

// TestCreatePartitionConcurrently checks creations that run at once
// (they write their files without the store lock): every creator of one
// partition gets the same log, and a Close during creations waits for
// them, so the store reopens with exactly the partitions created.
func TestCreatePartitionConcurrently(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir, Options{})
	const partitions, creators = 24, 4
	var (
		mu  sync.Mutex
		got = map[int32]*Partition{}
		wg  sync.WaitGroup
	)
	for range creators {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range int32(partitions) {
				p, err := st.CreatePartition("t", i, TopicConfig{})
				if err != nil {
					t.Errorf("CreatePartition(t, %d): %v", i, err)
					return
				}
				mu.Lock()
				if prev, ok := got[i]; ok && prev != p {
					t.Errorf("t-%d: two creators got two logs", i)
				}
				got[i] = p
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if n := len(st.Partitions()); n != partitions {
		t.Fatalf("store holds %d partitions, want %d", n, partitions)
	}

	// Creations racing a Close either finish before it closes the store
	// or are refused; none is left half written.
	created := make(chan int32, partitions)
	for i := range int32(partitions) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := st.CreatePartition("u", i, TopicConfig{})
			switch {
			case err == nil:
				created <- i
			case !errors.Is(err, ErrClosed):
				t.Errorf("CreatePartition(u, %d) during Close: %v", i, err)
			}
		}()
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(created)
	want := map[string]bool{}
	for i := range int32(partitions) {
		want[fmt.Sprintf("t-%d", i)] = true
	}
	for i := range created {
		want[fmt.Sprintf("u-%d", i)] = true
	}
	st2 := openStore(t, dir, Options{})
	have := map[string]bool{}
	for _, p := range st2.Partitions() {
		have[fmt.Sprintf("%s-%d", p.topic, p.partition)] = true
	}
	if len(have) != len(want) {
		t.Fatalf("reopened store holds %d partitions, want %d (%v)", len(have), len(want), have)
	}
	for k := range want {
		if !have[k] {
			t.Errorf("reopened store lacks %s", k)
		}
	}
}
