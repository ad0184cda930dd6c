package server

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"testing"
)

// TestFetchMemoryLimitDefault: fetch.memory.max.bytes wins when set; else
// the bound is a quarter of GOMEMLIMIT when set, else of the host's
// memory, never under 64 MiB.
func TestFetchMemoryLimitDefault(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	meminfo := func(kB int64) string {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "meminfo"), []byte("MemTotal: "+strconv.FormatInt(kB, 10)+" kB\nMemFree: 1 kB\nMemAvailable: 1 kB\nBuffers: 0 kB\nCached: 0 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	noCgroup := t.TempDir()
	cases := []struct {
		name     string
		setting  int64
		memLimit int64
		procRoot string
		want     int64
		wantFrom string
	}{
		{"the setting", 5 << 20, 1 << 30, meminfo(8 << 20), 5 << 20, "fetch.memory.max.bytes"},
		{"GOMEMLIMIT", 0, 1 << 30, meminfo(8 << 20), 256 << 20, "a quarter of GOMEMLIMIT"},
		{"host memory", 0, math.MaxInt64, meminfo(8 << 20), 2 << 30, "a quarter of host memory"},
		{"a small host", 0, math.MaxInt64, meminfo(128 << 10), 64 << 20, "a quarter of host memory"},
		{"nothing known", 0, math.MaxInt64, t.TempDir(), 64 << 20, "the floor (no memory size found)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			debug.SetMemoryLimit(c.memLimit)
			got, from := fetchMemoryLimit(c.setting, c.procRoot, noCgroup)
			if got != c.want || from != c.wantFrom {
				t.Fatalf("bound %d from %q, want %d from %q", got, from, c.want, c.wantFrom)
			}
		})
	}
}
