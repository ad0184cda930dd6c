package metadata

import (
	"log/slog"
	"testing"
)

// alterPartitionOf5000 creates a 5,000-partition RF 3 topic in f and
// returns the next ISR change of one of its partitions (each partition in
// turn, its third replica leaving or coming back) and a function applying
// a command that must succeed.
func alterPartitionOf5000(tb testing.TB, f *FSM) (next func() Command, apply func(Command) any) {
	tb.Helper()
	index := int64(0)
	apply = func(c Command) any {
		raw, err := Encode(c)
		if err != nil {
			tb.Fatal(err)
		}
		index++
		r := f.ApplyEntry(index, raw)
		if r.Err != nil {
			tb.Fatalf("%T: %v", c, r.Err)
		}
		return r.Value
	}
	epochs := map[int32]int64{}
	for id := int32(1); id <= 3; id++ {
		epochs[id] = apply(RegisterBroker{NodeID: id, Rack: string(rune('a' + id - 1)), Listeners: []Listener{{Name: "PLAINTEXT", Host: "127.0.0.1", Port: 9090 + id}}, NowMs: 1000, LeaseMs: 6000}).(int64)
	}
	const n = 5000
	as := make([][]int32, n)
	for i := range as {
		as[i] = []int32{int32(i%3 + 1), int32((i+1)%3 + 1), int32((i+2)%3 + 1)}
	}
	apply(CreateTopic{Name: "t", ID: TopicID{1}, Assignments: as})
	i := 0
	next = func() Command {
		part := int32(i % n)
		i++
		p, _ := f.Current().Partition("t", part)
		isr := p.Replicas // full again
		if len(p.ISR) == 3 {
			isr = p.Replicas[:2] // the third replica leaves
		}
		return AlterPartition{Topic: "t", Partition: part, LeaderID: p.Leader, BrokerEpoch: epochs[p.Leader], LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, NewISR: isr}
	}
	return next, apply
}

// BenchmarkAlterPartitionOf5000 applies one ISR change of one partition of
// a 5,000-partition RF 3 topic per op, as a broker rejoining such a
// cluster makes one per partition: what each costs the state machine on
// every broker (copying the topic's partition list, docs/benchmarks.md).
func BenchmarkAlterPartitionOf5000(b *testing.B) {
	next, apply := alterPartitionOf5000(b, New(slog.New(slog.DiscardHandler)))
	b.ReportAllocs()
	for b.Loop() {
		apply(next())
	}
}
