package storage

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPartitionTopicID: a log created with a topic id keeps it across a
// restart and a change of settings; asked for under another id it is
// refused (ErrTopicIDMismatch) with its records untouched, and once deleted
// the partition is created again, empty, under the new id. A log without
// an id (created without one, or a partition.metadata written before ids
// were stored) reads as unknown and takes the first id it is opened with.
func TestPartitionTopicID(t *testing.T) {
	dir := t.TempDir()
	old, cur := TopicID{1, 2, 3}, TopicID{9, 8, 7}
	st := openStore(t, dir, Options{})
	p, err := st.CreatePartitionWithID("t", 0, old, TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, p, makeBatch(t, batchSpec{records: 3, valueSize: 10}))
	p.SetConfig(TopicConfig{RetentionBytes: 1 << 20})
	legacy := mustCreate(t, st, "u", 0, TopicConfig{})
	if id := legacy.TopicID(); !id.IsZero() {
		t.Fatalf("a partition created without an id has %s", id)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// A partition.metadata of the format before ids: no topic_id field.
	b, err := os.ReadFile(filepath.Join(dir, "u-0", partitionMetaFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "topic_id") {
		t.Fatalf("partition.metadata of a partition without an id names one:\n%s", b)
	}

	st = openStore(t, dir, Options{})
	p, ok := st.Partition("t", 0)
	if !ok {
		t.Fatal("t-0 not recovered")
	}
	if p.TopicID() != old {
		t.Fatalf("recovered topic id %s, want %s", p.TopicID(), old)
	}
	if p.Config().RetentionBytes != 1<<20 {
		t.Fatal("the settings changed before the restart were lost")
	}
	if got, err := st.CreatePartitionWithID("t", 0, old, TopicConfig{RetentionBytes: 1 << 20}); err != nil || got != p {
		t.Fatalf("opening t-0 under its own id: %v (same log %v)", err, got == p)
	}
	if _, err := st.CreatePartitionWithID("t", 0, cur, TopicConfig{}); !errors.Is(err, ErrTopicIDMismatch) {
		t.Fatalf("opening t-0 under another topic id: %v, want ErrTopicIDMismatch", err)
	}
	if p.LogEndOffset() != 3 || p.TopicID() != old {
		t.Fatalf("a refused open changed the log: end %d, id %s", p.LogEndOffset(), p.TopicID())
	}
	if got, err := st.CreatePartition("t", 0, TopicConfig{RetentionBytes: 1 << 20}); err != nil || got != p {
		t.Fatalf("opening t-0 without an id: %v", err)
	}
	if err := st.DeletePartition("t", 0); err != nil {
		t.Fatal(err)
	}
	fresh, err := st.CreatePartitionWithID("t", 0, cur, TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if fresh.LogEndOffset() != 0 || fresh.TopicID() != cur {
		t.Fatalf("t-0 created again: end %d, id %s; want empty under %s", fresh.LogEndOffset(), fresh.TopicID(), cur)
	}

	legacy, ok = st.Partition("u", 0)
	if !ok {
		t.Fatal("u-0 not recovered")
	}
	if id := legacy.TopicID(); !id.IsZero() {
		t.Fatalf("a partition.metadata without an id reads as %s", id)
	}
	if got, err := st.CreatePartitionWithID("u", 0, cur, TopicConfig{}); err != nil || got != legacy {
		t.Fatalf("claiming u-0's unknown id: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = openStore(t, dir, Options{})
	for _, tp := range []string{"t", "u"} {
		p, ok := st.Partition(tp, 0)
		if !ok || p.TopicID() != cur {
			t.Fatalf("%s-0 after the restart: found %v, want id %s", tp, ok, cur)
		}
	}
}
