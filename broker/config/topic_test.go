package config

import (
	"strings"
	"testing"
)

func TestCanonicalTopic(t *testing.T) {
	tests := []struct {
		name, value string
		want        string // canonical value, when wantErr is ""
		wantErr     string
	}{
		{name: "retention.ms", value: "86400000", want: "86400000"},
		{name: "retention.ms", value: "-1", want: "-1"},
		{name: "retention.ms", value: " 1000 ", want: "1000"},
		{name: "cleanup.policy", value: "delete,compact", want: "compact,delete"},
		{name: "min.insync.replicas", value: "2", want: "2"},
		{name: "retention.ms", value: "0", wantErr: `retention.ms must be -1 (forever) or at least 1, got "0"`},
		{name: "retention.ms", value: "a day", wantErr: `retention.ms `},
		{name: "min.insync.replicas", value: "0", wantErr: `min.insync.replicas must be between 1 and 32767, got "0"`},
		{name: "compression.type", value: "zstd", want: "zstd"},
		{name: "compression.type", value: "brotli", wantErr: `compression.type must be one of producer, uncompressed, gzip, snappy, lz4, zstd, got "brotli"`},
		{name: "segment.bytes", value: "10", wantErr: `segment.bytes must be between 14 and 2147483647`},
		{name: "retention.mss", wantErr: `retention.mss is not a topic config (did you mean "retention.ms"?)`},
		{name: "log.retention.ms", wantErr: `log.retention.ms is the broker setting; the topic config is "retention.ms"`},
		{name: "message.downconversion.enable", wantErr: `is not a topic config (the topic configs are cleanup.policy, compression.type,`},
	}
	for _, tt := range tests {
		got, err := CanonicalTopic(tt.name, tt.value)
		switch {
		case tt.wantErr == "" && (err != nil || got != tt.want):
			t.Errorf("CanonicalTopic(%q, %q) = %q, %v; want %q", tt.name, tt.value, got, err, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("CanonicalTopic(%q, %q) error = %v; want one containing %q", tt.name, tt.value, err, tt.wantErr)
		}
	}
}

func TestValidateTopicConfigsReportsEveryProblem(t *testing.T) {
	errs := ValidateTopicConfigs(map[string]string{
		"retention.ms":        "-5",
		"segment.bytes":       "1048576",
		"min.insync.replica":  "2",
		"cleanup.policy":      "compact",
		"max.message.bytes":   "big",
		"delete.retention.ms": "60000",
	})
	var names []string
	for _, e := range errs {
		names = append(names, e.Name)
	}
	if got, want := strings.Join(names, ","), "max.message.bytes,min.insync.replica,retention.ms"; got != want {
		t.Fatalf("problems with %s, want %s (in name order): %v", got, want, errs)
	}
}

// TestTopicSettingsInheritBrokerSettings checks that every topic config
// inherits a user-settable broker setting whose rules judge its values.
func TestTopicSettingsInheritBrokerSettings(t *testing.T) {
	for _, ts := range TopicSettings() {
		if ts.BrokerSetting == "" {
			// A topic-only config judges its values itself.
			if ts.canonical == nil || ts.OwnAllowed == "" {
				t.Errorf("topic-only config %s has no rule or allowed text of its own", ts.Name)
			} else if _, err := CanonicalTopic(ts.Name, ts.Default); err != nil {
				t.Errorf("topic config %s refuses its own default %q: %v", ts.Name, ts.Default, err)
			}
			continue
		}
		bs, ok := Lookup(ts.BrokerSetting)
		if !ok || bs.Owner != OwnerUser {
			t.Errorf("topic config %s inherits %s, which is not a user-settable broker setting", ts.Name, ts.BrokerSetting)
			continue
		}
		if ts.Type != bs.Type {
			t.Errorf("topic config %s has type %s, its broker setting %s has %s", ts.Name, ts.Type, bs.Type, ts.BrokerSetting)
		}
		if bs.Default != "" {
			if _, err := CanonicalTopic(ts.Name, bs.Default); err != nil {
				t.Errorf("topic config %s refuses its broker setting's default %q: %v", ts.Name, bs.Default, err)
			}
		}
	}
}
