package clienttest

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/internal/testenv"
)

// TestKcatBalancedConsumer consumes with kcat -G, librdkafka's balanced
// consumer, which joins the group, reads to the end of every assigned
// partition (-e) and commits on the way out; a second run of the same group
// then starts from the committed offsets and reads only new records.
func TestKcatBalancedConsumer(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end broker test")
	}
	kcat := testenv.Tool(t, "kcat", "kcat")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	addr, _ := startBroker(t, t.TempDir())
	adm := newAdmin(t, addr)
	const topic, group = "logs", "kcat-group"
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil {
		t.Fatalf("creating topic: %v", err)
	}

	consume := func() []string {
		t.Helper()
		// auto.offset.reset, not -o: kcat applies -o to every assigned
		// partition and would ignore the committed offsets.
		cmd := exec.CommandContext(ctx, kcat, "-b", addr, "-G", group, "-e", "-q",
			"-f", "%s\n",
			"-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=100",
			"-X", "auto.commit.interval.ms=100", "-X", "auto.offset.reset=earliest",
			topic)
		out, err := cmd.Output()
		if err != nil {
			stderr := ""
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("kcat: %v\n%s", err, stderr)
		}
		return strings.Fields(string(out))
	}

	produce(t, ctx, addr, topic, 0, 90)
	first := consume()
	if len(first) != 90 {
		t.Fatalf("first kcat run read %d records, want 90", len(first))
	}
	produce(t, ctx, addr, topic, 90, 120)
	second := consume()
	got := map[string]bool{}
	for _, v := range second {
		got[v] = true
	}
	for i := 90; i < 120; i++ {
		if !got[strconv.Itoa(i)] {
			t.Errorf("second run missed record %d", i)
		}
	}
	if len(second) != 30 {
		t.Errorf("second run read %d records, want only the 30 new ones (committed offsets not used?)", len(second))
	}
}
