package metastore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixture is a metadata file written by the broker version that kept its
// metadata in this file (three topics, epochs bumped by three starts, broker
// configs, two producer-id blocks).
const fixture = "testdata/tributary-metadata-v1.json"

func writeFile(t *testing.T, content string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, FileName), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestReadFixture(t *testing.T) {
	b, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Read(writeFile(t, string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if f.ClusterID != "legacy-single-node-cl" || f.NextProducerID != 2000 || len(f.Topics) != 3 {
		t.Fatalf("read %+v", f)
	}
	orders := f.Topics["orders"]
	var wantID TopicID
	if err := wantID.UnmarshalText([]byte("w5mJJuyrCnWkfDX5wd2jww")); err != nil {
		t.Fatal(err)
	}
	if orders.ID != wantID || len(orders.Partitions) != 3 || orders.Partitions[2].LeaderEpoch != 3 || orders.Configs["retention.ms"] != "86400000" {
		t.Fatalf("orders %+v", orders)
	}
	if got := f.BrokerConfigs[ClusterDefault]["max.connections"]; got != "900" {
		t.Fatalf("cluster-wide broker configs %v", f.BrokerConfigs)
	}
	if got := f.BrokerConfigs[1]["num.partitions"]; got != "4" {
		t.Fatalf("node 1 broker configs %v", f.BrokerConfigs)
	}
}

func TestReadNoFile(t *testing.T) {
	f, err := Read(t.TempDir())
	if f != nil || err != nil {
		t.Fatalf("got %+v, %v", f, err)
	}
}

func TestReadRefusesWhatItCannotTakeWhole(t *testing.T) {
	for _, tt := range []struct{ name, content, want string }{
		{"not json", "{", "decoding"},
		{"unknown field", `{"version":1,"cluster_id":"c","topics":{},"next_producer_id_block":0,"future":1}`, "unknown field"},
		{"newer version", `{"version":2,"cluster_id":"c","topics":{}}`, "format version 2"},
		{"no cluster id", `{"version":1,"topics":{}}`, "no cluster id"},
		{"name differs from key", `{"version":1,"cluster_id":"c","topics":{"a":{"name":"b","id":"w5mJJuyrCnWkfDX5wd2jww","partitions":[{"leader_epoch":0}]}}}`, "malformed"},
		{"no partitions", `{"version":1,"cluster_id":"c","topics":{"a":{"name":"a","id":"w5mJJuyrCnWkfDX5wd2jww","partitions":[]}}}`, "malformed"},
		{"bad topic id", `{"version":1,"cluster_id":"c","topics":{"a":{"name":"a","id":"short","partitions":[{"leader_epoch":0}]}}}`, "bad topic id"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(writeFile(t, tt.content))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error about %q", err, tt.want)
			}
		})
	}
}

func TestRetire(t *testing.T) {
	dir := writeFile(t, `{"version":1,"cluster_id":"c","topics":{}}`)
	if err := Retire(dir); err != nil {
		t.Fatal(err)
	}
	if f, err := Read(dir); f != nil || err != nil {
		t.Fatalf("read after retiring: %+v, %v", f, err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName+RetiredSuffix)); err != nil {
		t.Fatalf("retired file: %v", err)
	}
	if err := Retire(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("retiring twice: %v", err)
	}
}
