package groups

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// observation is what one member saw in one generation.
type observation struct {
	member     string
	generation int32
	leader     string
	protocol   string
	members    []string // the leader's member list; nil for followers
	assignment string   // from SyncGroup; "" when the sync failed
}

// TestGroupChaosKeepsGenerationsConsistent runs members that join, sync,
// heartbeat, commit, leave, and go silent at random, the way misbehaving
// consumers do, and then checks what every member was told against Kafka's
// invariants: one leader and one protocol per generation, the leader's
// member list covers everyone that joined that generation, every member gets
// exactly the assignment the leader gave it, and a member's generations
// never go backwards.
func TestGroupChaosKeepsGenerationsConsistent(t *testing.T) {
	duration := 2 * time.Second
	if testing.Short() {
		duration = 500 * time.Millisecond
	}
	ctx := testCtx(t)
	c := newTestCoordinator(t, NewMemoryLog(), func(cfg *Config) { cfg.InitialRebalanceDelay = 20 * time.Millisecond })

	var mu sync.Mutex
	var observed []observation
	record := func(o observation) { mu.Lock(); observed = append(observed, o); mu.Unlock() }

	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 42))
			m := newTestMember(t, c, "chaos", fmt.Sprintf("m%d", i))
			m.session, m.rebalance = 150*time.Millisecond, 300*time.Millisecond
			if i == 0 {
				m.version = 1 // an old client among new ones
			}
			lastGen := int32(-1)
			for time.Now().Before(deadline) {
				r := m.join(ctx)
				switch r.ErrorCode {
				case 0:
				case kerr.UnknownMemberID.Code:
					m.id = ""
					continue
				case kerr.RebalanceInProgress.Code:
					continue
				default:
					t.Errorf("%s join: %s", m.clientID, codeName(r.ErrorCode))
					return
				}
				if m.generation < lastGen {
					t.Errorf("%s went from generation %d back to %d", m.clientID, lastGen, m.generation)
				}
				lastGen = m.generation
				o := observation{member: m.id, generation: m.generation, leader: r.LeaderID, protocol: *r.Protocol}
				var assignments map[string][]byte
				if m.leader {
					assignments = map[string][]byte{}
					for _, jm := range r.Members {
						o.members = append(o.members, jm.MemberID)
						assignments[jm.MemberID] = fmt.Appendf(nil, "%d/%s", m.generation, jm.MemberID)
					}
				}
				sr := m.sync(ctx, assignments)
				if sr.ErrorCode == 0 {
					o.assignment = string(sr.MemberAssignment)
				}
				record(o)
				switch sr.ErrorCode {
				case 0:
				case kerr.UnknownMemberID.Code:
					m.id = ""
					continue
				case kerr.RebalanceInProgress.Code, kerr.IllegalGeneration.Code:
					continue
				default:
					t.Errorf("%s sync: %s", m.clientID, codeName(sr.ErrorCode))
					return
				}

				// Stable for a while: heartbeat and commit.
				stableFor := time.Duration(rng.IntN(200)) * time.Millisecond
				for end := time.Now().Add(stableFor); time.Now().Before(end); {
					code := m.heartbeat()
					if code == kerr.UnknownMemberID.Code {
						m.id = ""
					}
					if code != 0 {
						break
					}
					if rng.IntN(5) == 0 {
						switch code := m.commit(ctx, "t", int32(i), int64(m.generation)); code {
						case 0, kerr.RebalanceInProgress.Code, kerr.IllegalGeneration.Code:
						case kerr.UnknownMemberID.Code:
							m.id = ""
						default:
							t.Errorf("%s commit: %s", m.clientID, codeName(code))
						}
					}
					time.Sleep(10 * time.Millisecond)
				}
				switch rng.IntN(10) {
				case 0: // leave and come back as a new member
					m.leave()
					m.id = ""
				case 1: // go silent past the session timeout
					time.Sleep(m.session + 50*time.Millisecond)
				}
			}
			m.leave()
		})
	}
	wg.Wait()

	byGen := map[int32][]observation{}
	for _, o := range observed {
		byGen[o.generation] = append(byGen[o.generation], o)
	}
	if len(byGen) < 2 {
		t.Fatalf("only %d generations in %v: the test did not exercise rebalances", len(byGen), duration)
	}
	for gen, obs := range byGen {
		var leaderList []string
		for _, o := range obs {
			if o.leader != obs[0].leader || o.protocol != obs[0].protocol {
				t.Errorf("generation %d: members were told different leaders or protocols: %+v", gen, obs)
			}
			if o.member == o.leader {
				leaderList = o.members
			}
		}
		if leaderList == nil {
			continue // the leader's answer was not observed (it failed its sync before recording)
		}
		inList := map[string]bool{}
		for _, id := range leaderList {
			inList[id] = true
		}
		for _, o := range obs {
			if !inList[o.member] {
				t.Errorf("generation %d: member %s joined but is not in the leader's member list %v", gen, o.member, leaderList)
			}
			if o.assignment != "" && o.assignment != fmt.Sprintf("%d/%s", gen, o.member) {
				t.Errorf("generation %d: member %s got assignment %q", gen, o.member, o.assignment)
			}
		}
	}
	waitFor(t, "the group to empty after everyone left", 5*time.Second, func() bool {
		d := describe(t, c, "chaos")
		return d.State == "Empty" && len(d.Members) == 0
	})
	t.Logf("%d generations, %d observations", len(byGen), len(observed))
}
