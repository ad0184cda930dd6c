package storage

import (
	"testing"
	"time"
)

// TestWritebackStartsOnWholePagesInChunks pins segment.startWriteback:
// write-back is asked for once writebackChunk bytes of whole pages piled
// up, never for the partial last page, from where the last request ended,
// and a truncation or a reopen moves that point back to what the file holds.
func TestWritebackStartsOnWholePagesInChunks(t *testing.T) {
	type span struct{ off, n int64 }
	var got []span
	defer func(f func(int, int64, int64, int) error) { syncFileRange = f }(syncFileRange)
	syncFileRange = func(_ int, off, n int64, _ int) error {
		got = append(got, span{off, n})
		return nil
	}
	dir := t.TempDir()
	s, err := createSegment(dir, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	write := func(n int) {
		t.Helper()
		if err := s.write(make([]byte, n)); err != nil {
			t.Fatal(err)
		}
		s.size += int64(n) // track's job once the bytes are batches
	}
	expect := func(step string, want ...span) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: write-back asked for %v, want %v", step, got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: write-back asked for %v, want %v", step, got, want)
			}
		}
		got = nil
	}
	write(100 << 10)
	expect("100 KiB written")
	write(200<<10 + 100)
	expect("300 KiB and 100 bytes written", span{0, 300 << 10}) // not the partial page
	write(10)
	expect("10 bytes more")
	if err := s.truncate(100_000); err != nil {
		t.Fatal(err)
	}
	s.size = 100_000
	write(300 << 10)
	// From the page the truncation cut into, to the last whole page.
	expect("300 KiB after a truncation to 100000", span{98304, (100_000+300<<10)&^4095 - 98304})
	if err := s.close(); err != nil {
		t.Fatal(err)
	}

	s, err = openSegment(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	end := s.size
	write(256 << 10)
	expect("256 KiB after a reopen", span{end &^ 4095, (end+256<<10)&^4095 - end&^4095})
}
