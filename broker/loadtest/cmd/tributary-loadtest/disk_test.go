package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The estimate takes each phase at its rate for its time, copies
// included; removed phases need only the largest, kept ones the sum.
func TestDiskNeed(t *testing.T) {
	mib := float64(1 << 20)
	so := singleOptions{duration: 10 * time.Second, warmup: time.Second, latencyRate: 20 << 20}
	co := clusterOptions{skip: true}
	need, phases := diskNeed(true, so, co, 0, false, false)
	if want := int64(11 * (640 + 20 + 1200) * mib * diskOverhead); need != want || len(phases) != 1 {
		t.Errorf("one broker's throughput only: %d bytes in %v, want %d", need, phases, want)
	}
	so.noThroughput = true
	if need, _ = diskNeed(true, so, co, 0, false, false); need != int64(11*20*mib*diskOverhead) {
		t.Errorf("one broker's latency phase alone: %d bytes, want %d", need, int64(11*20*mib*diskOverhead))
	}
	so.noThroughput = false
	so.tlsClusterRounds, so.idle = 2, 1000
	need, _ = diskNeed(true, so, co, 5<<30, false, false)
	if want := int64(2 * 3 * 10 * (460 + 370) * mib * diskOverhead); need != want {
		t.Errorf("with the TLS clusters: %d, want the TLS table's %d", need, want)
	}
	kept, phases := diskNeed(true, so, co, 5<<30, true, true)
	var sum int64
	for _, p := range phases {
		sum += p.bytes
	}
	if len(phases) != 4 || kept != sum+brokerBinaryBytes {
		t.Errorf("kept: %d over %v, want the sum of the phases and the binary", kept, phases)
	}
	co = clusterOptions{latencyDuration: time.Minute, latencyRate: 20 << 20, failovers: 3, many: 5000, txnRecords: 100}
	need, _ = diskNeed(false, so, co, 0, false, false)
	want := int64(3 * (11*460*mib + 61*20*mib + 3*failoverDiskBytes + 5000*partitionDiskBytes + 10*txnDiskRate) * diskOverhead)
	if need != want {
		t.Errorf("three brokers: %d, want %d", need, want)
	}
	co.noThroughput = true
	need, _ = diskNeed(false, so, co, 0, false, false)
	want = int64(3 * (61*20*mib + 3*failoverDiskBytes + 5000*partitionDiskBytes + 10*txnDiskRate) * diskOverhead)
	if need != want {
		t.Errorf("three brokers without the flat-out phase: %d, want %d", need, want)
	}
	co.noThroughput = false
	// What make bench runs by default: the TLS table's clusters dominate.
	def := singleOptions{duration: 10 * time.Second, warmup: time.Second, latencyRate: 20 << 20, idle: 1000, tlsRounds: 2, tlsClusterRounds: 2}
	need, _ = diskNeed(true, def, co, 1<<30, false, false)
	if gib := float64(need) / (1 << 30); gib < 45 || gib > 55 {
		t.Errorf("make bench's default needs %.1f GiB by the estimate, want 45-55", gib)
	}
}

// A run that needs more than the scratch directory's file system has is
// refused before it starts anything, saying how much it needs and has;
// -skip-disk-check runs it anyway.
func TestRunChecksTheDisk(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	missing := filepath.Join(t.TempDir(), "no-broker")
	so := singleOptions{duration: time.Second, recoverySize: "1000000TiB", latencyRate: 1 << 20}
	co := clusterOptions{skip: true}
	err := run(context.Background(), missing, dir, true, false, so, co)
	if err == nil || !strings.Contains(err.Error(), "needs about 107520000") || !strings.Contains(err.Error(), "GiB free") ||
		!strings.Contains(err.Error(), "one broker: recovery: 1075200000") || !strings.Contains(err.Error(), "-skip-disk-check") {
		t.Fatalf("run with a 1,000,000 TiB log: %v, want the disk check's refusal", err)
	}
	err = run(context.Background(), missing, dir, true, true, so, co)
	if err == nil || strings.Contains(err.Error(), "needs about") || !strings.Contains(err.Error(), missing) {
		t.Fatalf("with -skip-disk-check: %v, want the run to go on and fail on the missing broker", err)
	}
	if err := checkDisk(dir, 1, nil); err != nil {
		t.Errorf("1 byte refused: %v", err)
	}
	if err := checkDisk(filepath.Join(dir, "absent"), 1, nil); err == nil {
		t.Error("statfs of a missing directory passed")
	}
}

// dirBytes counts what the files hold on disk.
func TestDirBytes(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a", "b", "f"), make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := dirBytes(dir)
	if err != nil || n < 1<<20 || n > 1<<20+64<<10 {
		t.Errorf("dirBytes = %d, %v; want 1 MiB and its directories' blocks", n, err)
	}
}
