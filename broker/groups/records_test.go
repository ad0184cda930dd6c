package groups

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestRecordRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		o    committedOffset
	}{
		{"plain", committedOffset{offset: 42, leaderEpoch: 3, metadata: "m", commitAt: 1000, expireAt: -1}},
		{"no leader epoch", committedOffset{offset: 0, leaderEpoch: -1, commitAt: 5, expireAt: -1}},
		{"explicit retention", committedOffset{offset: 9, leaderEpoch: -1, metadata: "x", commitAt: 10, expireAt: 99}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := decodeRecord(Record{Key: offsetKey("g", "t", 7), Value: offsetValue(tt.o)})
			if err != nil {
				t.Fatal(err)
			}
			want := tt.o
			if want.expireAt >= 0 {
				want.leaderEpoch = -1 // the v1 value that holds an expiry has no epoch
			}
			if !d.isOffset || d.group != "g" || d.topic != "t" || d.partition != 7 || d.offset == nil || *d.offset != want {
				t.Fatalf("decoded %+v (offset %+v), want g t/7 %+v", d, d.offset, want)
			}
		})
	}
	d, err := decodeRecord(Record{Key: groupKey("g")})
	if err != nil || d.isOffset || d.group != "g" || d.meta != nil {
		t.Fatalf("group tombstone decoded as %+v, %v", d, err)
	}
	d, err = decodeRecord(Record{Key: []byte{0, 9, 1, 2}, Value: []byte{1}})
	if err != nil || !d.skip {
		t.Fatalf("unknown key version decoded as %+v, %v; want skipped", d, err)
	}
}

// FuzzDecodeRecord feeds arbitrary keys and values to the replay decoder:
// it must never panic, and whatever it accepts as an offset commit must
// encode back to an equivalent record.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(offsetKey("g", "t", 1), offsetValue(committedOffset{offset: 5, leaderEpoch: 2, metadata: "m", commitAt: 7, expireAt: -1}))
	f.Add(offsetKey("g", "t", 1), []byte(nil))
	gm := kmsg.NewGroupMetadataValue()
	gm.Version = 3
	gm.ProtocolType = "consumer"
	gm.Members = []kmsg.GroupMetadataValueMember{{MemberID: "m", ClientID: "c", Subscription: []byte{1}, Assignment: []byte{2}}}
	f.Add(groupKey("g"), gm.AppendTo(nil))
	f.Add([]byte{0}, []byte{})
	f.Fuzz(func(t *testing.T, key, value []byte) {
		d, err := decodeRecord(Record{Key: key, Value: value})
		if err != nil || d.skip || !d.isOffset || d.offset == nil {
			return
		}
		again, err := decodeRecord(Record{Key: offsetKey(d.group, d.topic, d.partition), Value: offsetValue(*d.offset)})
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if again.group != d.group || again.topic != d.topic || again.partition != d.partition || again.offset.offset != d.offset.offset || again.offset.metadata != d.offset.metadata {
			t.Fatalf("round trip changed the record: %+v -> %+v", d.offset, again.offset)
		}
		if !bytes.Equal(offsetKey(d.group, d.topic, d.partition), offsetKey(again.group, again.topic, again.partition)) {
			t.Fatalf("key changed in round trip")
		}
	})
}

func TestReplaySkipsDamagedRecords(t *testing.T) {
	ctx := testCtx(t)
	log := NewMemoryLog()
	good := committedOffset{offset: 8, leaderEpoch: -1, commitAt: 1, expireAt: -1}
	records := []Record{
		{Key: offsetKey("g", "t", 0), Value: offsetValue(good)},
		{Key: []byte{0}}, // key too short
		{Key: offsetKey("g", "t", 1), Value: []byte{0, 3}}, // truncated value
		{Key: []byte{0, 99, 1}, Value: []byte{1}},          // a record type from a newer broker
		{Key: groupKey("g"), Value: []byte{0, 3, 0}},       // truncated group metadata
	}
	if err := log.Append(ctx, records); err != nil {
		t.Fatal(err)
	}
	c := newTestCoordinator(t, log)
	if off, _ := fetchOne(t, c, "g", "t", 0); off != 8 {
		t.Fatalf("good offset after damaged neighbours = %d, want 8", off)
	}
	if off, _ := fetchOne(t, c, "g", "t", 1); off != -1 {
		t.Fatalf("damaged offset replayed as %d", off)
	}
}
