package config

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name, value string
		wantErr     string // "" = valid
	}{
		{"min.insync.replicas", "2", ""},
		{"min.insync.replicas", "0", `min.insync.replicas must be between 1 and 32767, got "0"`},
		{"min.insync.replicas", "two", "must be an integer"},
		{"default.replication.factor", "40000", "between 1 and 32767"},
		{"unclean.leader.election.enable", "false", ""},
		{"unclean.leader.election.enable", "true", ""},
		{"unclean.leader.election.enable", "sometimes", "must be true or false"},
		{"auto.create.topics.enable", "yes", "must be true or false"},
		{"log.retention.ms", "-1", ""},
		{"log.retention.ms", "0", "-1 (forever) or at least 1"},
		{"log.retention.ms", "-2", "-1 (forever) or at least 1"},
		{"log.retention.hours", "99999999999", "-1 (forever) or 1 .. 2562047"},
		{"log.roll.hours", "0", "between 1 and"},
		{"log.cleanup.policy", "delete,compact", ""},
		{"log.cleanup.policy", "archive", "want delete, compact or both"},
		{"log.message.timestamp.type", "Now", "must be one of CreateTime, LogAppendTime"},
		{"compression.type", "gzip", ""},
		{"compression.type", "uncompressed", ""},
		{"compression.type", "none", "must be one of producer, uncompressed, gzip, snappy, lz4, zstd"},
		{"socket.request.max.bytes", "100", "between 1024 and"},
		{"log.flush.interval.ms", "0", "at least 1"},
		{"broker.heartbeat.interval.ms", "5", "between 10 and"},
		{"message.max.bytes", " 2097152 ", ""},
		{"listeners", "PLAINTEXT://nohost", "listeners"},
		{"listener.name.tls.ssl.client.auth", "required", ""},
		{"listener.name.tls.ssl.client.auth", "always", "must be one of required, requested, none"},
		{"listener.name.sasl_scram.sasl.enabled.mechanisms", "SCRAM-SHA-512,OAUTHBEARER", ""},
		{"listener.name.sasl_scram.sasl.enabled.mechanisms", "PLAIN", `"PLAIN" is not one of`},
		{"listener.name.TLS.ssl.client.auth", "required", "is not a broker setting"},
		{"min.insync.replica", "2", `is not a broker setting (did you mean "min.insync.replicas"?)`},
		{"retention.ms", "1", `did you mean "log.retention.ms"?`},
		{"no.such.thing", "1", "is not a broker setting"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			err := Validate(tt.name, tt.value)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var se *SettingError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want a *SettingError containing %q", err, tt.wantErr)
			}
		})
	}
	if err := Validate("no.such.thing", "1"); strings.Contains(err.Error(), "did you mean") {
		t.Errorf("a name close to nothing got a suggestion: %v", err)
	}
}

// TestValidateIsWhatTheBrokerApplies probes every setting with values of
// every shape: Validate must accept exactly what the broker's config file
// loader and its live path (Config.Set, used by IncrementalAlterConfigs)
// accept.
func TestValidateIsWhatTheBrokerApplies(t *testing.T) {
	probes := []string{"", "0", "1", "-1", "-2", "13", "14", "1023", "1024", "65536", "2147483648", "true", "false", "TRUE",
		"x", "producer", "delete", "compact,delete", "PEM", "required", "SCRAM-SHA-256", "CreateTime", "group", "PLAINTEXT://127.0.0.1:9092"}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, s := range Settings() {
		name := strings.ReplaceAll(s.Name, listenerPlaceholder, "client")
		for _, v := range append(probes, s.Default, s.ClusterDefault) {
			verr := Validate(name, v)
			props, err := ParseProperties(strings.NewReader(name + "=" + v + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			ferr := Default().ApplyProperties(props, log)
			serr := Default().Set(name, v)
			if (verr == nil) != (ferr == nil) || (verr == nil) != (serr == nil) {
				t.Errorf("%s=%q: Validate %v, config file %v, live %v", name, v, verr, ferr, serr)
			}
		}
	}
}

func TestTableIsComplete(t *testing.T) {
	for _, s := range Settings() {
		if s.Type == "" || s.Doc == "" || (s.Owner != OwnerUser && s.Owner != OwnerAgent) {
			t.Errorf("%s: type %q, owner %q, doc %q", s.Name, s.Type, s.Owner, s.Doc)
		}
		if s.Owner == OwnerUser && s.Allowed == "" {
			t.Errorf("%s: user setting without allowed values", s.Name)
		}
		if s.Range != nil && (s.Type != "int" && s.Type != "long") {
			t.Errorf("%s: a range on a %s", s.Name, s.Type)
		}
		for _, v := range []string{s.Default, s.ClusterDefault} {
			if v == "" {
				continue
			}
			if err := s.Validate(v); err != nil {
				t.Errorf("%s: its own default %q is refused: %v", s.Name, v, err)
			}
		}
		if s.Dynamic && s.Owner != OwnerUser {
			t.Errorf("%s: dynamic but not the user's", s.Name)
		}
	}
}

func TestValidateOverrides(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]string
		want   []string // problems, in order; each a substring
	}{
		{name: "good", values: map[string]string{"log.retention.ms": "3600000", "min.insync.replicas": "2", "num.partitions": "6"}},
		{name: "value, owner and name at once",
			values: map[string]string{"min.insync.replicas": "0", "node.id": "4", "log.retention.msec": "1"},
			want: []string{
				`log.retention.msec is not a broker setting (did you mean "log.retention.ms"?)`,
				`min.insync.replicas must be between 1 and 32767, got "0"`,
				"node.id is set by the boot agent",
			}},
		{name: "values valid alone but not together",
			values: map[string]string{"broker.session.timeout.ms": "500", "broker.heartbeat.interval.ms": "300"},
			want:   []string{"broker.heartbeat.interval.ms (300) must be less than half of broker.session.timeout.ms (500)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := ValidateOverrides(tt.values)
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d problems %v, want %d", len(errs), errs, len(tt.want))
			}
			for i, e := range errs {
				if !strings.Contains(e.Error(), tt.want[i]) {
					t.Errorf("problem %d: %q, want %q", i, e.Error(), tt.want[i])
				}
			}
		})
	}
}

func TestClusterDefaults(t *testing.T) {
	tests := []struct {
		brokers     int
		rf, minISR  string
		autoCreate  string
		noUnclean   string
		problemsFor []string
	}{
		{brokers: 1, rf: "1", minISR: "1"},
		{brokers: 2, rf: "2", minISR: "1"},
		{brokers: 3, rf: "3", minISR: "2"},
		{brokers: 6, rf: "3", minISR: "2"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.brokers), func(t *testing.T) {
			d := ClusterDefaults(tt.brokers)
			want := map[string]string{
				"default.replication.factor": tt.rf, "min.insync.replicas": tt.minISR,
				"auto.create.topics.enable": "false", "unclean.leader.election.enable": "false",
			}
			if !maps.Equal(d, want) {
				t.Fatalf("ClusterDefaults(%d) = %v, want %v", tt.brokers, d, want)
			}
			if errs := ClusterRules(nil, tt.brokers); len(errs) > 0 {
				t.Errorf("the defaults of a %d-broker cluster break its rules: %v", tt.brokers, errs)
			}
			if errs := ValidateOverrides(d); len(errs) > 0 {
				t.Errorf("the defaults are refused as overrides: %v", errs)
			}
		})
	}
}

func TestClusterRules(t *testing.T) {
	tests := []struct {
		name    string
		values  map[string]string
		brokers int
		want    []string
	}{
		{name: "defaults", brokers: 3},
		{name: "more copies than brokers", values: map[string]string{"default.replication.factor": "4"}, brokers: 3,
			want: []string{"default.replication.factor is 4 but the cluster has 3 brokers"}},
		{name: "four copies on six brokers", values: map[string]string{"default.replication.factor": "4", "min.insync.replicas": "3"}, brokers: 6},
		{name: "min ISR above the default factor", values: map[string]string{"min.insync.replicas": "4"}, brokers: 6,
			want: []string{"min.insync.replicas (4) is above default.replication.factor (3)"}},
		{name: "factor lowered below the default min ISR", values: map[string]string{"default.replication.factor": "1"}, brokers: 3,
			want: []string{"default.replication.factor (1) is below min.insync.replicas (2)"}},
		{name: "min ISR equal to the factor", values: map[string]string{"min.insync.replicas": "3"}, brokers: 3},
		{name: "both lowered", values: map[string]string{"default.replication.factor": "1", "min.insync.replicas": "1"}, brokers: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := ClusterRules(tt.values, tt.brokers)
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tt.want[i]) {
					t.Errorf("got %q, want %q", got[i], tt.want[i])
				}
			}
		})
	}
}

func TestSuggest(t *testing.T) {
	tests := map[string]string{
		"min.insync.replica":          "min.insync.replicas",
		"log.retention.msec":          "log.retention.ms",
		"retention.ms":                "log.retention.ms",
		"auto.create.topic.enable":    "auto.create.topics.enable",
		"default.replicaton.factor":   "default.replication.factor",
		"nodeid":                      "", // agent settings are never suggested
		"completely.different.option": "",
	}
	for in, want := range tests {
		if got := Suggest(in); got != want {
			t.Errorf("Suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCanonical(t *testing.T) {
	tests := map[[2]string]string{
		{"log.cleanup.policy", "delete,compact"}: "compact,delete",
		{"log.retention.ms", "-1"}:               "-1",
		{"message.max.bytes", " 42 "}:            "42",
		{"auto.create.topics.enable", "TRUE"}:    "true",
	}
	for in, want := range tests {
		got, err := Canonical(in[0], in[1])
		if err != nil || got != want {
			t.Errorf("Canonical(%q, %q) = %q, %v; want %q", in[0], in[1], got, err, want)
		}
	}
}

func TestPerListenerSettings(t *testing.T) {
	props, err := ParseProperties(strings.NewReader("listener.name.tls.ssl.client.auth=required\nlistener.name.sasl_scram.sasl.enabled.mechanisms=SCRAM-SHA-512\n"))
	if err != nil {
		t.Fatal(err)
	}
	c := Default()
	if err := c.ApplyProperties(props, nil); err != nil {
		t.Fatal(err)
	}
	if v, ok := c.Get("listener.name.tls.ssl.client.auth"); !ok || v != "required" {
		t.Errorf("get = %q, %v", v, ok)
	}
	names := c.Names()
	for _, want := range []string{"listener.name.tls.ssl.client.auth", "listener.name.sasl_scram.sasl.enabled.mechanisms", "node.id"} {
		if !slices.Contains(names, want) {
			t.Errorf("Names() lacks %s", want)
		}
	}
	if slices.ContainsFunc(names, func(n string) bool { return strings.Contains(n, listenerPlaceholder) }) {
		t.Errorf("Names() lists a placeholder: %v", names)
	}
	if !c.Explicit["listener.name.tls.ssl.client.auth"] {
		t.Error("a per-listener setting from the file is not explicit")
	}
}
