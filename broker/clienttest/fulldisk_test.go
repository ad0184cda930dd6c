package clienttest

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary/tributary/broker/config"
	"github.com/tributary/tributary/internal/testenv"
)

// TestFullDiskAnswersStorageError runs a broker on a 4 MiB tmpfs: once the
// disk is full, produce fails with KAFKA_STORAGE_ERROR while the broker
// keeps serving, and producing works again when space returns.
func TestFullDiskAnswersStorageError(t *testing.T) {
	testenv.Root(t, "mounting a small tmpfs")
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput(); err != nil {
		testenv.Missing(t, "cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	// Ballast the test removes to give space back.
	ballast := filepath.Join(dir, "ballast")
	if err := os.WriteFile(ballast, bytes.Repeat([]byte{1}, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	b := startBroker(t, func(c *config.Config) { c.DataDir = dir })
	b.createTopic(t, "full", 1, nil)

	cl := b.client(t, kgo.DefaultProduceTopic("full"), kgo.RecordRetries(1), kgo.RecordDeliveryTimeout(20*time.Second))
	ctx := testContext(t, 60*time.Second)
	// The topic first takes a record: a client that meets a topic its
	// metadata does not list yet gives up on it with a record timeout,
	// which says nothing about a full disk.
	waitFor(t, "the topic to take a first record", 20*time.Second, func() bool {
		return cl.ProduceSync(ctx, &kgo.Record{Value: []byte("first")}).FirstErr() == nil
	})
	value := make([]byte, 16<<10)
	_, _ = rand.Read(value) // incompressible: kgo compresses by default
	var storageErr error
	for i := 0; i < 1000 && storageErr == nil; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
			storageErr = err
		}
	}
	if !errors.Is(storageErr, kerr.KafkaStorageError) {
		t.Fatalf("filling the disk ended with %v, want KAFKA_STORAGE_ERROR", storageErr)
	}
	// Still serving.
	if _, err := b.admin(t).BrokerMetadata(ctx); err != nil {
		t.Fatalf("metadata on a full disk: %v", err)
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	ok := b.client(t, kgo.DefaultProduceTopic("full"))
	waitFor(t, "produce to work again", 20*time.Second, func() bool {
		return ok.ProduceSync(ctx, &kgo.Record{Value: []byte("after")}).FirstErr() == nil
	})
	ends := listEnds(t, b.addr, "full")
	if ends[0] < 3 {
		t.Fatalf("end offset %d after recovery", ends[0])
	}
}
