package clienttest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/internal/testenv"
)

// requireTool ends the test (testenv.Missing) when an external client is
// not installed.
func requireTool(t *testing.T, path, pkg string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		testenv.Missing(t, "%s not installed (Debian package %s): run make tools", path, pkg)
	}
}

// run runs a command with a deadline and returns its stdout; stderr is in
// the failure message.
func run(t *testing.T, limit time.Duration, stdin string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	// librdkafka warns on stderr when it silently stops compressing
	// (KAFKA-18659): that would mean our ApiVersions answer is wrong.
	if strings.Contains(stderr.String(), "not compressing") {
		t.Fatalf("%s fell back to no compression:\n%s", name, stderr.String())
	}
	return stdout.String()
}

func TestKcatEveryCodec(t *testing.T) {
	requireTool(t, "/usr/bin/kcat", "kcat")
	b := startBroker(t)
	b.createTopic(t, "kcat", 2, nil)
	var want []string
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		var in strings.Builder
		for i := range 20 {
			v := fmt.Sprintf("%s-%d", codec, i)
			want = append(want, v)
			fmt.Fprintln(&in, v)
		}
		run(t, 30*time.Second, in.String(), "/usr/bin/kcat", "-P", "-b", b.addr, "-t", "kcat", "-z", codec,
			"-X", "request.required.acks=all", "-X", "enable.idempotence=true")
	}
	out := run(t, 30*time.Second, "", "/usr/bin/kcat", "-C", "-b", b.addr, "-t", "kcat", "-o", "beginning", "-e", "-q", "-f", "%s\n")
	got := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		got[line]++
	}
	for _, v := range want {
		if got[v] != 1 {
			t.Fatalf("%s consumed %d times; output:\n%s", v, got[v], out)
		}
	}
	meta := run(t, 10*time.Second, "", "/usr/bin/kcat", "-L", "-b", b.addr, "-t", "kcat")
	if !strings.Contains(meta, `topic "kcat" with 2 partitions`) {
		t.Fatalf("kcat -L:\n%s", meta)
	}
}

const python = "/usr/bin/python3"

func requirePython(t *testing.T, module, pkg string) {
	t.Helper()
	requireTool(t, python, "python3")
	if err := exec.Command(python, "-c", "import "+module).Run(); err != nil {
		testenv.Missing(t, "python module %s not installed (Debian package %s): run make tools", module, pkg)
	}
}

func TestKafkaPython(t *testing.T) {
	requirePython(t, "kafka", "python3-kafka")
	b := startBroker(t)
	b.createTopic(t, "kpy", 2, nil)
	script := `
import sys
from kafka import KafkaProducer, KafkaConsumer
addr = sys.argv[1]
p = KafkaProducer(bootstrap_servers=addr, acks='all', compression_type='gzip', linger_ms=5)
futures = [p.send('kpy', key=str(i % 3).encode(), value=('py-%d' % i).encode()) for i in range(100)]
p.flush(30)
for f in futures:
    f.get(timeout=30)
p.close()
c = KafkaConsumer('kpy', bootstrap_servers=addr, group_id='kpy-group', auto_offset_reset='earliest',
                  enable_auto_commit=False, consumer_timeout_ms=20000)
seen = set()
for m in c:
    seen.add(m.value.decode())
    if len(seen) == 100:
        break
c.commit()
c.close()
print(len(seen))
`
	out := run(t, 90*time.Second, "", python, "-c", script, b.addr)
	if strings.TrimSpace(out) != "100" {
		t.Fatalf("kafka-python consumed %q distinct records, want 100", out)
	}
	assertCommitted(t, b, "kpy-group", "kpy", 100)
}

// TestKafkaPythonRefusedInternalTopicCreate: kafka-python's admin client
// creating __consumer_offsets gets INVALID_REQUEST, which it raises as
// InvalidRequestError, and the topic is not created.
func TestKafkaPythonRefusedInternalTopicCreate(t *testing.T) {
	requirePython(t, "kafka", "python3-kafka")
	b := startBroker(t)
	script := `
import sys
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import InvalidRequestError
a = KafkaAdminClient(bootstrap_servers=sys.argv[1])
try:
    a.create_topics([NewTopic('__consumer_offsets', num_partitions=3, replication_factor=1, topic_configs={'cleanup.policy': 'delete'})])
    print('created')
except InvalidRequestError as e:
    print('InvalidRequestError')
print(sorted(t for t in a.list_topics() if t.startswith('__')))
a.close()
`
	out := run(t, 90*time.Second, "", python, "-c", script, b.addr)
	if want := "InvalidRequestError\n[]\n"; out != want {
		t.Fatalf("kafka-python printed %q, want %q", out, want)
	}
}

// TestKafkaPythonReadsEveryCodec: batches other clients wrote in every
// codec (kcat here; franz-go, the demo's producer, sends snappy by
// default) are read by kafka-python, which needs a Python module per codec
// (make tools installs them).
func TestKafkaPythonReadsEveryCodec(t *testing.T) {
	requireTool(t, "/usr/bin/kcat", "kcat")
	requirePython(t, "kafka", "python3-kafka")
	requirePython(t, "snappy", "python3-snappy")
	requirePython(t, "lz4", "python3-lz4")
	requirePython(t, "zstandard", "python3-zstandard")
	b := startBroker(t)
	b.createTopic(t, "kpycodecs", 1, nil)
	codecs := []string{"none", "gzip", "snappy", "lz4", "zstd"}
	for _, codec := range codecs {
		var in strings.Builder
		for i := range 10 {
			fmt.Fprintf(&in, "%s-%d\n", codec, i)
		}
		run(t, 30*time.Second, in.String(), "/usr/bin/kcat", "-P", "-b", b.addr, "-t", "kpycodecs", "-z", codec,
			"-X", "request.required.acks=all")
	}
	script := `
import sys
from kafka import KafkaConsumer
c = KafkaConsumer('kpycodecs', bootstrap_servers=sys.argv[1], auto_offset_reset='earliest',
                  enable_auto_commit=False, consumer_timeout_ms=20000)
seen = []
for m in c:
    seen.append(m.value.decode())
    if len(seen) == 50:
        break
c.close()
print('\n'.join(seen))
`
	out := run(t, 90*time.Second, "", python, "-c", script, b.addr)
	got := strings.Split(strings.TrimSpace(out), "\n")
	var want []string
	for _, codec := range codecs {
		for i := range 10 {
			want = append(want, fmt.Sprintf("%s-%d", codec, i))
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("kafka-python read:\n%s\nwant, in order:\n%s", out, strings.Join(want, "\n"))
	}
}

func TestConfluentKafkaPython(t *testing.T) {
	requirePython(t, "confluent_kafka", "python3-confluent-kafka")
	b := startBroker(t)
	b.createTopic(t, "ckpy", 2, nil)
	script := `
import sys
from confluent_kafka import Producer, Consumer
addr = sys.argv[1]
errors = []
def cb(err, msg):
    if err is not None:
        errors.append(err)
for codec in ['none', 'gzip', 'snappy', 'lz4', 'zstd']:
    p = Producer({'bootstrap.servers': addr, 'enable.idempotence': True, 'compression.codec': codec, 'linger.ms': 5})
    for i in range(20):
        p.produce('ckpy', key=str(i).encode(), value=('%s-%d' % (codec, i)).encode(), on_delivery=cb)
    if p.flush(30) != 0:
        errors.append('unflushed')
if errors:
    print('errors', errors)
    sys.exit(1)
c = Consumer({'bootstrap.servers': addr, 'group.id': 'ckpy-group', 'auto.offset.reset': 'earliest', 'enable.auto.commit': False})
c.subscribe(['ckpy'])
seen = set()
import time
deadline = time.time() + 30
while len(seen) < 100 and time.time() < deadline:
    m = c.poll(1.0)
    if m is None:
        continue
    if m.error():
        print('error', m.error())
        sys.exit(1)
    seen.add(m.value().decode())
c.commit(asynchronous=False)
c.close()
print(len(seen))
`
	out := run(t, 90*time.Second, "", python, "-c", script, b.addr)
	if strings.TrimSpace(out) != "100" {
		t.Fatalf("confluent-kafka consumed %q distinct records, want 100", out)
	}
	assertCommitted(t, b, "ckpy-group", "ckpy", 100)
}

// assertCommitted checks that a group's committed offsets on a topic add up
// to total records.
func assertCommitted(t *testing.T, b *testBroker, group, topic string, total int64) {
	t.Helper()
	ctx := testContext(t, 10*time.Second)
	offs, err := b.admin(t).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetching offsets of %s: %v", group, err)
	}
	var sum int64
	offs.Each(func(o kadmOffset) {
		if o.Topic == topic {
			sum += o.At
		}
	})
	if sum != total {
		t.Fatalf("group %s committed %d records of %s, want %d", group, sum, topic, total)
	}
}
