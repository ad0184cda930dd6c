package replica

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/cluster/metadata"
)

// versionControl is a control plane whose metadata a test sets, counting
// the full-disk reports it takes.
type versionControl struct {
	mu      sync.Mutex
	st      *metadata.State
	reports atomic.Int32
}

func (c *versionControl) NodeID() int32 { return 2 }
func (c *versionControl) State() *metadata.State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}
func (c *versionControl) Changed() <-chan struct{}         { return make(chan struct{}) }
func (c *versionControl) CaughtUp(st *metadata.State) bool { return true }
func (c *versionControl) AlterPartition(ctx context.Context, topic string, partition, leaderEpoch, partitionEpoch int32, newISR []int32) (metadata.Partition, error) {
	return metadata.Partition{}, nil
}
func (c *versionControl) ReplicaDiskFull(ctx context.Context, topic string, partition, leaderEpoch int32) (metadata.Partition, error) {
	c.reports.Add(1)
	return metadata.Partition{PartitionEpoch: 1}, nil
}

// versionState is a cluster of brokers 1 and 2 (of this version) and 3
// (reporting version v3), with t-0 led by 1 and followed by 2.
func versionState(v3 metadata.MetadataVersion) *metadata.State {
	st := metadata.Empty()
	for id, v := range map[int32]metadata.MetadataVersion{1: metadata.CurrentMetadataVersion, 2: metadata.CurrentMetadataVersion, 3: v3} {
		st.Brokers[id] = &metadata.Broker{NodeID: id, Epoch: int64(id), MetadataVersion: v}
	}
	st.Topics["t"] = metadata.NewTopic("t", metadata.TopicID{1}, nil, metadata.Partition{Replicas: []int32{1, 2}, Leader: 1, ISR: []int32{1, 2}})
	return st
}

// TestFullDiskIsNotReportedToAnOlderCluster: while a broker of an older
// version is registered, a follower's full disk is not reported (the
// command would halt that broker's metadata), as before ReplicaDiskFull
// existed, with one log line however often the writes fail; once every
// broker is new, it is reported.
func TestFullDiskIsNotReportedToAnOlderCluster(t *testing.T) {
	var logs bytes.Buffer
	var logMu sync.Mutex
	ctl := &versionControl{st: versionState(0)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := &Manager{
		cfg: ManagerConfig{Control: ctl}, id: 2, ctx: ctx,
		log:            slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil)),
		reporting:      map[int32]bool{},
		diskReports:    map[TopicPartition]diskReport{},
		heldBackLogged: map[metadata.CommandType]bool{},
	}
	tp := TopicPartition{Topic: "t", Partition: 0}
	for range 50 {
		m.reportFollowerDiskFull(tp, 0)
	}
	time.Sleep(50 * time.Millisecond) // a report would be in flight
	if n := ctl.reports.Load(); n != 0 {
		t.Fatalf("%d full-disk reports with broker 3 of an older version", n)
	}
	logMu.Lock()
	lines := strings.Count(logs.String(), "held back")
	logMu.Unlock()
	if lines != 1 {
		t.Fatalf("%d log lines for 50 full disks held back, want 1:\n%s", lines, logs.String())
	}

	ctl.mu.Lock()
	ctl.st = versionState(metadata.CurrentMetadataVersion)
	ctl.mu.Unlock()
	m.reportFollowerDiskFull(tp, 0)
	deadline := time.Now().Add(5 * time.Second)
	for ctl.reports.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := ctl.reports.Load(); n != 1 {
		t.Fatalf("%d full-disk reports once every broker is new, want 1", n)
	}
	if m.heldBack(ctl.State(), metadata.TypeReplicaDiskFull) {
		t.Fatal("held back once every broker is new")
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
