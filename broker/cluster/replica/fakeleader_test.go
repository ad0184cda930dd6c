package replica

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fakeLeader serves Fetch (through HandleFetch, the code the server will
// call) and OffsetForLeaderEpoch for in-memory logs over the Kafka protocol
// on loopback.
type fakeLeader struct {
	t     *testing.T
	ln    net.Listener
	mu    sync.Mutex
	parts map[TopicPartition]*leaderPart
	// lookup, when set, replaces parts: the server of a Manager.
	lookup Lookup
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

type leaderPart struct {
	log     *memLog
	tracker *Leader
}

func newFakeLeader(t *testing.T) *fakeLeader {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &fakeLeader{t: t, ln: ln, parts: map[TopicPartition]*leaderPart{}, conns: map[net.Conn]struct{}{}}
	fl.wg.Add(1)
	go fl.serve()
	t.Cleanup(fl.close)
	return fl
}

func (fl *fakeLeader) addr() string { return fl.ln.Addr().String() }

func (fl *fakeLeader) set(tp TopicPartition, lp *leaderPart) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.parts[tp] = lp
}

func (fl *fakeLeader) serve() {
	defer fl.wg.Done()
	for {
		c, err := fl.ln.Accept()
		if err != nil {
			return
		}
		fl.mu.Lock()
		fl.conns[c] = struct{}{}
		fl.mu.Unlock()
		fl.wg.Add(1)
		go func() {
			defer fl.wg.Done()
			defer c.Close()
			for fl.handle(c) == nil {
			}
		}()
	}
}

func (fl *fakeLeader) close() {
	fl.ln.Close()
	fl.mu.Lock()
	for c := range fl.conns {
		c.Close()
	}
	fl.mu.Unlock()
	fl.wg.Wait()
}

func (fl *fakeLeader) handle(c net.Conn) error {
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		return err
	}
	b := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	key, version, corr := int16(binary.BigEndian.Uint16(b)), int16(binary.BigEndian.Uint16(b[2:])), binary.BigEndian.Uint32(b[4:])
	idLen := int16(binary.BigEndian.Uint16(b[8:]))
	body := b[10+max(int(idLen), 0):]
	req := kmsg.RequestForKey(key)
	if req == nil {
		return errors.New("unknown key")
	}
	req.SetVersion(version)
	if req.IsFlexible() {
		var err error
		if body, err = skipTags(body); err != nil {
			return err
		}
	}
	if err := req.ReadFrom(body); err != nil {
		return err
	}
	var resp kmsg.Response
	switch r := req.(type) {
	case *kmsg.FetchRequest:
		resp = fl.fetch(r)
	case *kmsg.OffsetForLeaderEpochRequest:
		resp = fl.offsetForLeaderEpoch(r)
	default:
		return errors.New("unexpected request")
	}
	out := binary.BigEndian.AppendUint32(make([]byte, 4), corr)
	if resp.IsFlexible() {
		out = append(out, 0)
	}
	out = resp.AppendTo(out)
	binary.BigEndian.PutUint32(out, uint32(len(out)-4))
	_, err := c.Write(out)
	return err
}

func (fl *fakeLeader) find(topic string, partition int32) (*Leader, LeaderLog, bool) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.lookup != nil {
		return fl.lookup(topic, partition)
	}
	lp, ok := fl.parts[TopicPartition{topic, partition}]
	if !ok {
		return nil, nil, false
	}
	return lp.tracker, lp.log, true
}

func epochError(current, ours int32) int16 {
	switch {
	case current < ours:
		return kerr.FencedLeaderEpoch.Code
	case current > ours:
		return kerr.UnknownLeaderEpoch.Code
	}
	return 0
}

func (fl *fakeLeader) offsetForLeaderEpoch(r *kmsg.OffsetForLeaderEpochRequest) *kmsg.OffsetForLeaderEpochResponse {
	resp := r.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	for _, t := range r.Topics {
		rt := kmsg.NewOffsetForLeaderEpochResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			rp.Partition = p.Partition
			tracker, log, ok := fl.find(t.Topic, p.Partition)
			switch {
			case !ok:
				rp.ErrorCode = kerr.NotLeaderForPartition.Code
			case epochError(p.CurrentLeaderEpoch, tracker.Epoch()) != 0:
				rp.ErrorCode = epochError(p.CurrentLeaderEpoch, tracker.Epoch())
			default:
				rp.LeaderEpoch, rp.EndOffset = log.EndOffsetForLeaderEpoch(p.LeaderEpoch)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (fl *fakeLeader) fetch(r *kmsg.FetchRequest) *kmsg.FetchResponse {
	return HandleFetch(context.Background(), r, fl.find)
}
