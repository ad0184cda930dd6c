package cluster

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tributary/tributary/internal/testenv"
)

// unfinishedSnapshots lists the .tmp directories under dir's snapshots.
func unfinishedSnapshots(t *testing.T, dir string) []string {
	t.Helper()
	left, err := filepath.Glob(filepath.Join(dir, "snapshots", "*.tmp"))
	if err != nil {
		t.Fatal(err)
	}
	return left
}

// TestMetadataLogOutlastsItsReserve: broker 3's volume fills and the
// metadata log outgrows its Raft store's reserve (128 KiB here: some 400
// entries, the log stopping with the term and vote's 16 KiB and one
// write's estimate left). What happens: the broker does not crash; its
// store refuses the entries past the reserve, so it stops applying
// metadata (as the active controller it commits nothing and loses the
// leadership), and a snapshot cannot be written to compact the log. Once
// the space frees, the broker stores the entries it missed and applies
// them, its reserve is whole again, and the snapshot that failed is
// taken at once (Raft's own tries are an hour apart here), compacting
// the log; no half-written snapshot is left on the volume, neither while
// it is full nor after.
func TestMetadataLogOutlastsItsReserve(t *testing.T) {
	const reserve = 128 << 10
	tc := &testCluster{t: t, dirs: map[int32]string{3: testenv.Tmpfs(t, 8, "the full-disk tests of the metadata log")}}
	tc.edit = func(c *Config) {
		c.MetadataLogReserve = reserve
		// Raft's own snapshots only every hour, so that broker 3's log
		// is compacted by the snapshot it retries once space frees,
		// neither by Raft's next try nor by one the leader sends.
		c.SnapshotInterval = time.Hour
	}
	startTestCluster(t, tc, 3)
	tc.waitForLeader()
	tc.waitForState("brokers registered", registered(1, 2, 3))
	full := tc.nodes[3]
	free := testenv.FillVolume(t, tc.dirs[3])
	freed := false
	defer func() {
		if !freed {
			free()
		}
	}()

	// Proposed through broker 1; broker 3 may be the active controller
	// and fail them until it loses the leadership.
	proposed, refused := 0, 0
	deadline := time.Now().Add(2 * time.Minute)
	for proposed < 1500 && time.Now().Before(deadline) {
		if _, err := tc.nodes[1].AllocateProducerIDs(ctxT(t), 1); err != nil {
			refused++
			time.Sleep(50 * time.Millisecond)
			continue
		}
		proposed++
	}
	if proposed < 1500 {
		t.Fatalf("%d entries committed in 2 minutes (%d proposals failed)", proposed, refused)
	}
	last, err := tc.nodes[1].store.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	stuck, err := full.store.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	if stuck >= last || !full.RaftStoreOnReserve() {
		t.Fatalf("broker 3's log ends at %d, broker 1's at %d, on its reserve: %v; the test did not use the reserve up", stuck, last, full.RaftStoreOnReserve())
	}
	t.Logf("broker 3 stored the log to %d of %d and applied it to %d; %d proposals failed", stuck, last, full.State().Index, refused)
	// A snapshot cannot be written, and leaves nothing behind.
	if err := full.raft.Snapshot().Error(); err == nil {
		t.Fatal("a snapshot was written on a full volume: the test shows nothing")
	}
	if left := unfinishedSnapshots(t, tc.dirs[3]); len(left) > 0 {
		t.Fatalf("failed snapshots left on the full volume: %v", left)
	}

	free()
	freed = true
	start := time.Now()
	checkFor(t, 30*time.Second, func() error {
		if got, want := full.State().Index, tc.nodes[1].State().Index; got < want {
			return fmt.Errorf("broker 3 applied the log to %d, broker 1 to %d", got, want)
		}
		// Topped up to the whole reserve, less what was written since
		// (at most half).
		if r, _ := full.RaftStoreReserve(); full.RaftStoreOnReserve() || r < reserve/2 {
			return fmt.Errorf("broker 3's reserve: %d bytes, on it: %v", r, full.RaftStoreOnReserve())
		}
		first, err := full.store.FirstIndex()
		if err != nil {
			return err
		}
		if first <= stuck-uint64(full.cfg.SnapshotThreshold) {
			return fmt.Errorf("broker 3's log starts at %d: not compacted since it stopped at %d", first, stuck)
		}
		return nil
	})
	t.Logf("%v after the space returned broker 3 caught up, its reserve whole and its log compacted", time.Since(start).Round(time.Millisecond))
	if left := unfinishedSnapshots(t, tc.dirs[3]); len(left) > 0 {
		t.Fatalf("failed snapshots left on the volume: %v", left)
	}
}

// TestVoterPastItsReserveSavesTermAndVote: broker 3's volume fills and
// the metadata log uses its Raft store's reserve up (512 KiB here), then
// the leadership moves between brokers 1 and 2 again and again (Raft's
// leadership transfer, each an election at a new term). Raft panics
// when it cannot save its current term ("failed to save current term"),
// and refuses its vote when it cannot save that: past its reserve
// broker 3 must still save each new term and its vote. Before the part
// of the reserve kept back from the log, the log took the whole reserve
// and broker 3 panicked within the first 50 elections in each of 4 runs
// ("failed to save current term: write .../raft.db: no space left on
// device", from requestVote), when the term and vote were bbolt writes.
func TestVoterPastItsReserveSavesTermAndVote(t *testing.T) {
	voterOnAFullVolumeVotes(t, 512<<10)
}

// TestVoterWithoutAReserveSavesTermAndVote is the same with no reserve
// at all (a file system without fallocate): no space kept for anything,
// while reads of broker 3's store run beside its writes. When the term
// and vote were bbolt writes, a save after a read had kept the pages the
// previous save freed needed a new page, and broker 3 panicked ("failed
// to save current term: ... no space left on device"). In their own
// file, written in place, they need none.
func TestVoterWithoutAReserveSavesTermAndVote(t *testing.T) {
	voterOnAFullVolumeVotes(t, -1)
}

// voterOnAFullVolumeVotes fills broker 3's volume (its Raft store keeps
// reserve bytes; negative: none) until its log stops, then checks that it
// saves the term and its vote of each of 50 elections while readers of
// its store run.
func voterOnAFullVolumeVotes(t *testing.T, reserve int64) {
	tc := &testCluster{t: t, dirs: map[int32]string{3: testenv.Tmpfs(t, 8, "the full-disk tests of the metadata log")}}
	tc.edit = func(c *Config) { c.MetadataLogReserve = reserve }
	startTestCluster(t, tc, 3)
	tc.waitForLeader()
	tc.waitForState("brokers registered", registered(1, 2, 3))
	full := tc.nodes[3]
	free := testenv.FillVolume(t, tc.dirs[3])
	defer free()

	// Entries until broker 3's store refuses them: its log stops while
	// broker 1's goes on.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if time.Now().After(deadline) {
			t.Fatal("broker 3's log did not stop in 2 minutes on a full volume")
		}
		for i := 0; i < 50; i++ {
			if _, err := tc.nodes[1].AllocateProducerIDs(ctxT(t), 1); err != nil {
				time.Sleep(50 * time.Millisecond)
			}
		}
		last, err := tc.nodes[1].store.LastIndex()
		if err != nil {
			t.Fatal(err)
		}
		stuck, err := full.store.LastIndex()
		if err != nil {
			t.Fatal(err)
		}
		if (full.RaftStoreOnReserve() || reserve < 0) && stuck+100 < last {
			t.Logf("broker 3's log stopped at %d, broker 1's at %d", stuck, last)
			break
		}
	}

	// Readers of broker 3's store beside Raft's writes, as Raft's own
	// reads of its log and the reserve's top-up are: a read open across a
	// write keeps the pages that write freed from the next one, which
	// takes new pages instead, past the reserve.
	stop := make(chan struct{})
	var readers sync.WaitGroup
	defer func() { close(stop); readers.Wait() }()
	for range 4 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := full.store.LastIndex(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}

	for i := 0; i < 50; i++ {
		leader := tc.waitForLeader()
		term := leader.raft.CurrentTerm()
		if leader == full {
			// Broker 3 cannot commit; it loses the leadership by itself.
			checkFor(t, 30*time.Second, func() error {
				if full.IsActive() {
					return errors.New("broker 3 still the active controller")
				}
				return nil
			})
			continue
		}
		if err := leader.raft.LeadershipTransfer().Error(); err != nil {
			t.Logf("transfer %d: %v", i, err)
		}
		var newTerm uint64
		checkFor(t, 30*time.Second, func() error {
			for _, id := range []int32{1, 2} {
				c := tc.nodes[id]
				if c.IsActive() && c.raft.CurrentTerm() > term {
					newTerm = c.raft.CurrentTerm()
					return nil
				}
			}
			return fmt.Errorf("no new leader past term %d", term)
		})
		// Broker 3 was asked for its vote (a transfer's candidate asks
		// every voter, and a voter with a leader votes for it): it saved
		// the new term and a vote in it.
		checkFor(t, 30*time.Second, func() error {
			cur, err := full.store.GetUint64([]byte("CurrentTerm"))
			if err != nil || cur < newTerm {
				return fmt.Errorf("broker 3's saved term: %d, %v; the leader's is %d", cur, err, newTerm)
			}
			voted, err := full.store.GetUint64([]byte("LastVoteTerm"))
			if err != nil || voted < newTerm {
				return fmt.Errorf("broker 3's last vote saved in term %d, %v; the leader's is %d", voted, err, newTerm)
			}
			return nil
		})
	}
	cur, _ := full.store.GetUint64([]byte("CurrentTerm"))
	if reserve < 0 {
		if last, err := full.store.LastIndex(); err != nil || last+100 > tc.nodes[1].raft.LastIndex() {
			t.Fatalf("broker 3's log at %d (%v), broker 1's at %d: the volume is no longer full", last, err, tc.nodes[1].raft.LastIndex())
		}
		t.Logf("broker 3, without a reserve, saved term %d and its vote in it", cur)
		return
	}
	left, _ := full.RaftStoreReserve()
	if !full.RaftStoreOnReserve() || !full.RaftStoreLogStopped() {
		t.Fatalf("broker 3 on its reserve: %v, its log stopped: %v; the volume is still full", full.RaftStoreOnReserve(), full.RaftStoreLogStopped())
	}
	t.Logf("broker 3 saved term %d and its vote in it; %d bytes of the reserve left (%d kept back from the log)", cur, left, reserve/8)
}
