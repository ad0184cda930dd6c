package metrics

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeProc writes a /proc tree with the three files the registry reads and
// returns its root. cpu is the first line of stat without "cpu".
func fakeProc(t *testing.T, cpu string) string {
	t.Helper()
	root := t.TempDir()
	writeProc(t, root, cpu)
	return root
}

func writeProc(t *testing.T, root, cpu string) {
	t.Helper()
	files := map[string]string{
		"stat": "cpu  " + cpu + " 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 1\n",
		"meminfo": "MemTotal:        8000000 kB\nMemFree:         1000000 kB\nMemAvailable:    5000000 kB\n" +
			"Buffers:          200000 kB\nCached:          3000000 kB\nSwapCached:            0 kB\n" +
			"SwapTotal:       2000000 kB\nSwapFree:        1500000 kB\n",
		"net/dev": "Inter-|   Receive                                                |  Transmit\n" +
			" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n" +
			"    lo: 5000 50 0 0 0 0 0 0 5000 50 0 0 0 0 0 0\n" +
			"  eth0: 100000 1000 2 3 0 0 0 0 200000 2000 4 5 0 0 0 0\n" +
			"  eth1: 100 10 0 1 0 0 0 0 200 20 0 0 0 0 0 0\n",
	}
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fakeClock is a settable clock for rates and time lag.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newTestRegistry returns a registry on a fake /proc and a fake clock.
func newTestRegistry(t *testing.T) (*Registry, *fakeClock) {
	t.Helper()
	r := New(Options{
		ClusterName: "orders", BrokerID: 2, DataDir: t.TempDir(),
		ProcRoot: fakeProc(t, "100 10 50 800 40 0 0 0"), Logger: quietLogger(),
	})
	clock := newFakeClock()
	r.now = clock.now
	return r, clock
}

// quietLogger drops logs unless the test runs with -v.
func quietLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// logRecorder is a slog handler that keeps records for assertions.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logRecorder) logger() *slog.Logger { return slog.New(l) }

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.records = append(l.records, r.Clone())
	l.mu.Unlock()
	return nil
}

func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// count returns how many records at level have a message containing text.
func (l *logRecorder) count(level slog.Level, text string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.records {
		if r.Level == level && strings.Contains(r.Message, text) {
			n++
		}
	}
	return n
}
