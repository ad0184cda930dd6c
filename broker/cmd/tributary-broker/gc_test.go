package main

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
)

func TestConfigureGC(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })

	tests := []struct {
		name        string
		gogc        string // "" unsets GOGC
		runtime     int    // the percentage the runtime took from GOGC at start
		wantPercent int
		wantEnv     bool
	}{
		{name: "unset: the broker's default", runtime: 100, wantPercent: brokerGCPercent},
		{name: "set: the environment's", gogc: "50", runtime: 50, wantPercent: 50, wantEnv: true},
		{name: "off stays off", gogc: "off", runtime: -1, wantPercent: -1, wantEnv: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("GOGC", tt.gogc)
			debug.SetGCPercent(tt.runtime)
			percent, fromEnv := configureGC()
			if percent != tt.wantPercent || fromEnv != tt.wantEnv {
				t.Fatalf("configureGC() = %d, %v; want %d, %v", percent, fromEnv, tt.wantPercent, tt.wantEnv)
			}
			if got := debug.SetGCPercent(100); got != tt.wantPercent {
				t.Fatalf("collector left at %d%%, want %d%%", got, tt.wantPercent)
			}
		})
	}
}

// TestConfigureMemoryLimit: without GOMEMLIMIT, run sets the soft limit to
// three quarters of the process's memory; with it, the environment's stays.
func TestConfigureMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	proc := t.TempDir()
	if err := os.WriteFile(filepath.Join(proc, "meminfo"), []byte("MemTotal: 4194304 kB\nMemFree: 1 kB\nMemAvailable: 1 kB\nBuffers: 0 kB\nCached: 0 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	noCgroup := t.TempDir()

	t.Run("unset: three quarters of the host", func(t *testing.T) {
		t.Setenv("GOMEMLIMIT", "")
		debug.SetMemoryLimit(math.MaxInt64)
		limit, from := configureMemoryLimit(proc, noCgroup)
		if want := int64(3 << 30); limit != want || from != "three quarters of host memory" {
			t.Fatalf("configureMemoryLimit() = %d, %q; want %d from host memory", limit, from, want)
		}
		if got := debug.SetMemoryLimit(-1); got != 3<<30 {
			t.Fatalf("runtime limit %d, want %d", got, int64(3<<30))
		}
	})
	t.Run("set: the environment's", func(t *testing.T) {
		t.Setenv("GOMEMLIMIT", "1GiB")
		debug.SetMemoryLimit(1 << 30) // what the runtime read at start
		limit, from := configureMemoryLimit(proc, noCgroup)
		if limit != 1<<30 || from != "GOMEMLIMIT" {
			t.Fatalf("configureMemoryLimit() = %d, %q; want the environment's 1 GiB", limit, from)
		}
		if got := debug.SetMemoryLimit(-1); got != 1<<30 {
			t.Fatalf("runtime limit %d changed", got)
		}
	})
	t.Run("nothing known: no limit", func(t *testing.T) {
		t.Setenv("GOMEMLIMIT", "")
		debug.SetMemoryLimit(math.MaxInt64)
		limit, _ := configureMemoryLimit(t.TempDir(), noCgroup)
		if limit != 0 || debug.SetMemoryLimit(-1) != math.MaxInt64 {
			t.Fatalf("a limit was set without a memory size: %d", limit)
		}
	})
}
