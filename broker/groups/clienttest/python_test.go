package clienttest

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/internal/testenv"
)

// kafkaPythonConsumer consumes the topic in a group until it is idle for a
// second, commits synchronously, closes (LeaveGroup), and prints the values.
const kafkaPythonConsumer = `
import sys
from kafka import KafkaConsumer
addr, group, topic = sys.argv[1], sys.argv[2], sys.argv[3]
c = KafkaConsumer(topic, bootstrap_servers=addr, group_id=group,
                  auto_offset_reset="earliest", enable_auto_commit=False,
                  consumer_timeout_ms=1000, session_timeout_ms=6000,
                  heartbeat_interval_ms=100)
for m in c:
    print(m.value.decode())
c.commit()
c.close()
`

// TestKafkaPythonConsumerGroup consumes with kafka-python (Debian's
// python3-kafka) in a group, twice: the second run starts at the offsets
// the first committed.
func TestKafkaPythonConsumerGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end broker test")
	}
	const python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		testenv.Missing(t, "Debian python3 not installed (%s): run make tools", python)
	}
	if err := exec.Command(python, "-c", "import kafka").Run(); err != nil {
		testenv.Missing(t, "python3-kafka not installed: run make tools")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	addr, _ := startBroker(t, t.TempDir())
	adm := newAdmin(t, addr)
	const topic, group = "py", "python-group"
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatalf("creating topic: %v", err)
	}
	consume := func() []string {
		t.Helper()
		out, err := exec.CommandContext(ctx, python, "-c", kafkaPythonConsumer, addr, group, topic).Output()
		if err != nil {
			stderr := ""
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("kafka-python: %v\n%s", err, stderr)
		}
		return strings.Fields(string(out))
	}

	produce(t, ctx, addr, topic, 0, 40)
	if got := consume(); len(got) != 40 {
		t.Fatalf("first run read %d records, want 40", len(got))
	}
	produce(t, ctx, addr, topic, 40, 50)
	second := consume()
	if len(second) != 10 {
		t.Fatalf("second run read %d records %v, want only the 10 new ones", len(second), second)
	}
	for i, v := range second {
		if n, err := strconv.Atoi(v); err != nil || n < 40 {
			t.Errorf("second run record %d = %q, want one of 40..49", i, v)
		}
	}
}
