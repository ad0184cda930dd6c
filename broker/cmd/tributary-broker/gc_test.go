package main

import (
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
