package metadata

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestCommandVersions: every command type this binary applies can be
// proposed at CurrentMetadataVersion, and a type added after
// MetadataVersionBaseline without an entry in commandVersions cannot:
// its CommandVersion is above what this binary supports.
func TestCommandVersions(t *testing.T) {
	for typ := range handlers {
		v := CommandVersion(typ)
		if v > CurrentMetadataVersion {
			t.Errorf("command type %d needs version %d, above CurrentMetadataVersion %d: give it an entry in commandVersions", typ, v, CurrentMetadataVersion)
		}
		if typ > lastBaselineType && typ != TypeAlterScramCredentials && v <= MetadataVersionBaseline {
			t.Errorf("command type %d, newer than the baseline, needs only version %d", typ, v)
		}
	}
	for typ := CommandType(1); typ <= lastBaselineType; typ++ {
		if v := CommandVersion(typ); v != MetadataVersionBaseline {
			t.Errorf("baseline command type %d needs version %d", typ, v)
		}
	}
	for _, typ := range []CommandType{TypeFenceBroker, TypeLeaderLogFailed, TypeReplicaDiskFull, TypeBrokerDiskWritable, TypeAlterClientQuotas} {
		if v := CommandVersion(typ); v != 2 {
			t.Errorf("command type %d needs version %d, want 2", typ, v)
		}
	}
	if v := CommandVersion(TypeBrokerMetadataVersion | IgnorableFlag); v != MetadataVersionBaseline {
		t.Errorf("an ignorable type needs version %d, want the baseline (older brokers skip it)", v)
	}
	if v := CommandVersion(100); v <= CurrentMetadataVersion {
		t.Errorf("an unknown type needs version %d, want above %d", v, CurrentMetadataVersion)
	}
}

func (m *machine) reportVersion(id int32, epoch int64, v MetadataVersion) {
	m.t.Helper()
	m.must(BrokerMetadataVersion{NodeID: id, BrokerEpoch: epoch, MetadataVersion: v})
}

func TestUsableMetadataVersion(t *testing.T) {
	m := newMachine(t)
	if v := m.f.Current().UsableMetadataVersion(); v != MetadataVersionBaseline {
		t.Fatalf("no broker: usable version %d", v)
	}
	epochs := m.cluster(3)
	m.reportVersion(1, epochs[1], CurrentMetadataVersion)
	m.reportVersion(2, epochs[2], CurrentMetadataVersion)
	// Broker 3 registered as older binaries do: no version.
	st := m.f.Current()
	if v := st.UsableMetadataVersion(); v != MetadataVersionBaseline {
		t.Fatalf("broker 3 without a version: usable version %d", v)
	}
	err := st.CheckProposable(TypeReplicaDiskFull)
	if !errors.Is(err, ErrMetadataVersion) || !strings.Contains(err.Error(), "brokers [3]") {
		t.Fatalf("ReplicaDiskFull with broker 3 old: %v, want ErrMetadataVersion naming broker 3", err)
	}
	for _, typ := range []CommandType{TypeCreateTopic, TypeRegisterBroker, TypeDeleteACLs, TypeAlterScramCredentials, TypeBrokerMetadataVersion | IgnorableFlag} {
		if err := st.CheckProposable(typ); err != nil {
			t.Errorf("type %d with broker 3 old: %v", typ, err)
		}
	}

	// A fenced broker still counts: it replays the log when it comes back.
	if fenced := m.must(FenceBroker{NodeID: 3, BrokerEpoch: epochs[3]}); fenced != true {
		t.Fatalf("fencing broker 3: %v", fenced)
	}
	if err := m.f.Current().CheckProposable(TypeReplicaDiskFull); !errors.Is(err, ErrMetadataVersion) {
		t.Fatalf("broker 3 old and fenced: %v", err)
	}
	// A report of another incarnation changes nothing.
	if r := m.apply(BrokerMetadataVersion{NodeID: 3, BrokerEpoch: epochs[3] + 100, MetadataVersion: CurrentMetadataVersion}); !errors.Is(r.Err, ErrStaleBrokerEpoch) {
		t.Fatalf("report of a stale incarnation: %v", r.Err)
	}
	if r := m.apply(BrokerMetadataVersion{NodeID: 3, BrokerEpoch: epochs[3], MetadataVersion: 0}); !errors.Is(r.Err, ErrInvalidRequest) {
		t.Fatalf("report of version 0: %v", r.Err)
	}
	m.reportVersion(3, epochs[3], CurrentMetadataVersion)
	st = m.f.Current()
	if v := st.UsableMetadataVersion(); v != CurrentMetadataVersion {
		t.Fatalf("every broker reported: usable version %d", v)
	}
	if err := st.CheckProposable(TypeReplicaDiskFull); err != nil {
		t.Fatalf("every broker reported: %v", err)
	}

	// A new incarnation counts as old until it reports (it may be a
	// downgrade); an unregistered broker counts no more.
	e1 := m.must(RegisterBroker{NodeID: 1, NowMs: 2000, LeaseMs: lease}).(int64)
	if err := m.f.Current().CheckProposable(TypeFenceBroker); !errors.Is(err, ErrMetadataVersion) {
		t.Fatalf("broker 1 registered again without a version: %v", err)
	}
	m.reportVersion(1, e1, CurrentMetadataVersion)
	m.must(RegisterBroker{NodeID: 4, NowMs: 2000, LeaseMs: lease})
	if err := m.f.Current().CheckProposable(TypeFenceBroker); !errors.Is(err, ErrMetadataVersion) {
		t.Fatalf("old broker 4 registered: %v", err)
	}
	m.must(UnregisterBroker{NodeID: 4})
	if err := m.f.Current().CheckProposable(TypeFenceBroker); err != nil {
		t.Fatalf("old broker 4 unregistered: %v", err)
	}

	// The versions survive a snapshot.
	restored, err := UnmarshalState(m.bytes())
	if err != nil {
		t.Fatal(err)
	}
	if v := restored.UsableMetadataVersion(); v != CurrentMetadataVersion {
		t.Fatalf("restored: usable version %d", v)
	}
}

// TestOlderLogsAndSnapshotsLoad: a log and a snapshot of a version
// without metadata versions load, every broker in them at the baseline.
func TestOlderLogsAndSnapshotsLoad(t *testing.T) {
	old := newMachine(t)
	// The registration as an older binary encodes it, byte for byte.
	r := old.applyRaw(append([]byte{byte(TypeRegisterBroker)}, `{"node_id":1,"listeners":[{"name":"PLAINTEXT","host":"h","port":9092}],"now_ms":1000,"lease_ms":6000}`...))
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if v := old.f.Current().UsableMetadataVersion(); v != MetadataVersionBaseline {
		t.Fatalf("older log: usable version %d", v)
	}
	snap := []byte(`{"format":1,"state":{"cluster_id":"c1","index":7,"now_ms":1000,"brokers":{"1":{"node_id":1,"listeners":[],"epoch":2,"lease_expiry_ms":7000,"fenced":false}},"topics":{},"next_producer_id":0}}`)
	st, err := UnmarshalState(snap)
	if err != nil {
		t.Fatalf("older snapshot: %v", err)
	}
	if err := st.CheckProposable(TypeReplicaDiskFull); !errors.Is(err, ErrMetadataVersion) {
		t.Fatalf("older snapshot: %v", err)
	}
	// A state of baseline brokers encodes as older versions wrote it.
	if b := old.bytes(); bytes.Contains(b, []byte("metadata_version")) {
		t.Fatalf("a baseline broker's snapshot names a version: %s", b)
	}
}

// TestOlderBrokersSkipTheVersionReport: a broker that does not know
// BrokerMetadataVersion skips it (IgnorableFlag) instead of halting.
func TestOlderBrokersSkipTheVersionReport(t *testing.T) {
	m := newMachine(t)
	epochs := m.cluster(1)
	h := handlers[TypeBrokerMetadataVersion]
	delete(handlers, TypeBrokerMetadataVersion)
	defer func() { handlers[TypeBrokerMetadataVersion] = h }()
	if r := m.apply(BrokerMetadataVersion{NodeID: 1, BrokerEpoch: epochs[1], MetadataVersion: CurrentMetadataVersion}); r.Err != nil {
		t.Fatalf("older broker: %v", r.Err)
	}
	if err := m.f.Err(); err != nil {
		t.Fatalf("older broker halted: %v", err)
	}
}
