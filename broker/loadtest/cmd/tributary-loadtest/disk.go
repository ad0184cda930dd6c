package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The disk estimate takes each phase at the fastest rate `make bench` has
// reached on these machines (docs/benchmarks.md, Results), rounded up, so
// that a faster run still fits: one broker flat out 614.9 MiB/s, three
// brokers RF 3 flat out 450.5 MiB/s (each broker writes every byte: three
// copies on the one disk), the three-broker TLS-everywhere cluster 0.8x
// of that (0.69-0.79x in every run of 5 and 6 December). At those rates
// `make bench` needs 51 GiB, nearly all of it the TLS table's two
// clusters, which hold their logs until their last round.
const (
	singleDiskRate = 640 << 20 // one broker, flat out
	// singleWideDiskRate: one broker flat out with the wide window
	// (loadtest.WideBufferedRecords), 1047-1062 MiB/s on 6 December.
	singleWideDiskRate = 1200 << 20
	clusterDiskRate    = 460 << 20 // three brokers RF 3, flat out, per copy
	clusterTLSDiskRate = 370 << 20 // the same with TLS everywhere
	// txnDiskRate: transactions of 100 records (24.7 MiB/s at best).
	txnDiskRate = 40 << 20
	// failoverDiskBytes: one failover round's records (1 MiB/s for the
	// kill, the restart and a full ISR again: well under a minute).
	failoverDiskBytes = 60 << 20
	// partitionDiskBytes: an empty replica's directory and files.
	partitionDiskBytes = 64 << 10
	// brokerBinaryBytes: the broker built into the data directory when
	// -broker is not given.
	brokerBinaryBytes = 150 << 20
	// diskOverhead: batch headers, indexes, checkpoints and the metadata
	// log on top of the record values (what each phase's directory held
	// over the values it was sent: 1.03-1.05 in the runs of 6 December).
	diskOverhead = 1.05
)

// diskPhase is what one phase's data directory holds at its largest.
type diskPhase struct {
	name  string
	bytes int64
}

// diskNeed estimates the scratch space a run needs: the largest phase's
// when each phase's directory is removed as it ends (the default), every
// phase's when they are kept (-data-dir).
func diskNeed(single bool, so singleOptions, co clusterOptions, recSize int64, keep, build bool) (int64, []diskPhase) {
	secs := func(d time.Duration) float64 { return d.Seconds() }
	bytes := func(f float64) int64 { return int64(f * diskOverhead) }
	var phases []diskPhase
	add := func(name string, b int64) {
		if b > 0 {
			phases = append(phases, diskPhase{name, b})
		}
	}
	if single {
		flatOut := float64(singleDiskRate + singleWideDiskRate)
		if so.noThroughput {
			flatOut = 0
		}
		add("one broker: throughput and latency", bytes(secs(so.warmup+so.duration)*(flatOut+so.latencyRate)))
		add("one broker: idle partitions", bytes(float64(so.idle)*partitionDiskBytes))
		add("one broker: recovery", bytes(float64(recSize)))
		add("one broker: TLS listeners", bytes(float64(so.tlsRounds*len(secureListeners))*secs(so.duration)*singleDiskRate))
		// Both clusters hold their logs until the last round ends.
		add("three brokers: TLS table's two clusters", bytes(float64(so.tlsClusterRounds*3)*secs(so.duration)*(clusterDiskRate+clusterTLSDiskRate)))
	}
	if !co.skip {
		flatOut := secs(so.warmup+so.duration) * clusterDiskRate
		if co.noThroughput {
			flatOut = 0
		}
		per := flatOut + secs(so.warmup+co.latencyDuration)*co.latencyRate +
			float64(co.failovers)*failoverDiskBytes + float64(co.many)*partitionDiskBytes
		if co.txnRecords > 0 {
			per += secs(so.duration) * txnDiskRate
		}
		add("three brokers", bytes(3*per))
	}
	var need int64
	for _, p := range phases {
		if keep {
			need += p.bytes
		} else {
			need = max(need, p.bytes)
		}
	}
	if build {
		need += brokerBinaryBytes
	}
	return need, phases
}

// freeBytes is the space an unprivileged writer may still use on dir's
// file system.
func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// checkDisk refuses a run whose estimated need is more than dir's file
// system has free: a full disk stops every process on the machine, and a
// run killed midway leaves its logs behind.
func checkDisk(dir string, need int64, phases []diskPhase) error {
	free, err := freeBytes(dir)
	if err != nil {
		return err
	}
	if need <= free {
		return nil
	}
	var b strings.Builder
	for _, p := range phases {
		fmt.Fprintf(&b, "\n  %s: %s", p.name, gibText(p.bytes))
	}
	return fmt.Errorf("the run needs about %s of scratch space in %s and its file system has %s free; "+
		"free some, lower -duration, -recovery-size or the rounds, skip phases, point TMPDIR or -data-dir at a larger file system, "+
		"or pass -skip-disk-check. Estimated per phase (each at the fastest rate measured here; removed as it ends unless -data-dir keeps it):%s",
		gibText(need), dir, gibText(free), b.String())
}

// dirBytes is the space a directory tree takes on disk (allocated blocks:
// sparse files count what they hold).
func dirBytes(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		}
		return nil
	})
	return total, err
}

func gibText(b int64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }

// discardMeasured is discard that first tells stderr what the phase's
// directory held, so that runs show how close the estimate is.
func discardMeasured(keep bool, name, dir string) {
	if n, err := dirBytes(dir); err == nil && n > 0 {
		fmt.Fprintf(os.Stderr, "disk: %s held %s (%d MiB)\n", name, gibText(n), n>>20)
	}
	discard(keep, dir)
}
