package metrics

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestParseCloudWatchSettings(t *testing.T) {
	cases := []struct {
		name    string
		props   map[string]string
		want    CloudWatchSettings
		wantErr bool
	}{
		{"defaults", nil, CloudWatchSettings{Level: LevelDefault, Interval: time.Minute}, false},
		{"as the boot agent renders", map[string]string{
			KeyClusterName: "orders", KeyCloudWatchEnable: "true", KeyCloudWatchNamespace: "Tributary/Kafka",
			KeyCloudWatchLevel: "PER_TOPIC_PER_BROKER", KeyCloudWatchInterval: "30000",
		}, CloudWatchSettings{Enabled: true, Namespace: "Tributary/Kafka", Level: LevelPerTopicPerBroker, Interval: 30 * time.Second, ClusterName: "orders"}, false},
		{"off with only the cluster name", map[string]string{KeyClusterName: "orders", KeyCloudWatchEnable: "false"},
			CloudWatchSettings{Level: LevelDefault, Interval: time.Minute, ClusterName: "orders"}, false},
		{"on without a namespace", map[string]string{KeyCloudWatchEnable: "true"}, CloudWatchSettings{}, true},
		{"AWS namespace", map[string]string{KeyCloudWatchEnable: "true", KeyCloudWatchNamespace: "AWS/Kafka"}, CloudWatchSettings{}, true},
		{"bad level", map[string]string{KeyCloudWatchLevel: "VERBOSE"}, CloudWatchSettings{}, true},
		{"bad interval", map[string]string{KeyCloudWatchInterval: "1m"}, CloudWatchSettings{}, true},
		{"too short an interval", map[string]string{KeyCloudWatchInterval: "10"}, CloudWatchSettings{}, true},
		{"bad bool", map[string]string{KeyCloudWatchEnable: "yes please"}, CloudWatchSettings{}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseCloudWatchSettings(func(k string) (string, bool) { v, ok := c.props[k]; return v, ok })
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v", err)
			}
			if !c.wantErr && got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestLoadCloudWatchSettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broker.properties")
	content := "# rendered by the boot agent\nnode.id=2\ntributary.cluster.name=orders\n" +
		"tributary.metrics.cloudwatch.enable=true\ntributary.metrics.cloudwatch.namespace=Tributary/Kafka\n" +
		"tributary.metrics.cloudwatch.level=PER_BROKER\ntributary.metrics.cloudwatch.interval.ms=60000\n"
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := LoadCloudWatchSettings(path)
	if err != nil {
		t.Fatal(err)
	}
	want := CloudWatchSettings{Enabled: true, Namespace: "Tributary/Kafka", Level: LevelPerBroker, Interval: time.Minute, ClusterName: "orders"}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got, err := LoadCloudWatchSettings(""); err != nil || got.Enabled {
		t.Errorf("no file: %+v, %v", got, err)
	}
	if _, err := LoadCloudWatchSettings(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing file: no error")
	}
}
