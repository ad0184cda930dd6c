package config

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefaultsParse(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	if ls := c.ClientListeners(); len(ls) != 1 || ls[0].Addr != "127.0.0.1:9092" || ls[0].Protocol != ProtocolPlaintext || c.DataDir != "./data" || c.NodeID != 1 {
		t.Fatalf("defaults: listeners %+v data %q node %d", ls, c.DataDir, c.NodeID)
	}
	if c.SocketRequestMaxBytes != 100<<20 {
		t.Fatalf("socket.request.max.bytes default %d", c.SocketRequestMaxBytes)
	}
	if c.LogRetention != 168*time.Hour {
		t.Fatalf("retention default %v", c.LogRetention)
	}
	for _, s := range Settings() {
		if _, ok := c.Get(s.Name); !ok {
			t.Errorf("setting %s has no getter", s.Name)
		}
	}
}

func TestParseProperties(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Property
	}{
		{"equals", "a=1\n", []Property{{"a", "1", 1}}},
		{"colon and spaces", "  a : 1 \n", []Property{{"a", "1 ", 1}}},
		{"space separator", "a 1\n", []Property{{"a", "1", 1}}},
		{"comments", "# x\n! y\n\na=1", []Property{{"a", "1", 4}}},
		{"continuation", "a=1,\\\n    2\nb=3\n", []Property{{"a", "1,2", 1}, {"b", "3", 3}}},
		{"escapes", `a\=b=c\td\u0041` + "\n", []Property{{"a=b", "c\tdA", 1}}},
		{"empty value", "a=\n", []Property{{"a", "", 1}}},
		{"escaped backslash at end", `a=c:\\` + "\nb=1\n", []Property{{"a", `c:\`, 1}, {"b", "1", 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseProperties(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("property %d: got %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
	if _, err := ParseProperties(strings.NewReader(`a=\u00`)); err == nil {
		t.Fatal("short \\u escape accepted")
	}
}

func TestApplyProperties(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		check   func(*testing.T, *Config)
		wantErr string
	}{
		{name: "boot agent file", file: `
node.id=3
broker.rack=us-east-1a
listeners=CLIENT://10.0.1.5:9092,CLIENT_SECURE://10.0.1.5:9094
advertised.listeners=CLIENT://broker-3.example:9092,CLIENT_SECURE://broker-3.example:9094
listener.security.protocol.map=CLIENT:PLAINTEXT,CLIENT_SECURE:SSL
log.dirs=/var/lib/tributary/data
cluster.id=abc
controller.quorum.voters=1@10.0.1.5:9095
tributary.some.future.key=1
`, check: func(t *testing.T, c *Config) {
			if c.NodeID != 3 || c.Rack != "us-east-1a" || c.ClusterID != "abc" || c.DataDir != "/var/lib/tributary/data" {
				t.Fatalf("got %+v", c)
			}
			want := []Listener{
				{Name: "CLIENT", Protocol: "PLAINTEXT", Addr: "10.0.1.5:9092", Advertised: "broker-3.example:9092"},
				{Name: "CLIENT_SECURE", Protocol: "SSL", Addr: "10.0.1.5:9094", Advertised: "broker-3.example:9094"},
			}
			if got := c.ClientListeners(); !slices.Equal(got, want) {
				t.Fatalf("listeners %+v, want %+v", got, want)
			}
		}},
		{name: "ms wins over hours wherever it is", file: "log.retention.ms=1000\nlog.retention.hours=5\n", check: func(t *testing.T, c *Config) {
			if c.LogRetention != time.Second {
				t.Fatalf("retention %v", c.LogRetention)
			}
		}},
		{name: "retention forever", file: "log.retention.ms=-1\n", check: func(t *testing.T, c *Config) {
			if c.LogRetention >= 0 {
				t.Fatalf("retention %v", c.LogRetention)
			}
			if v, _ := c.Get("log.retention.ms"); v != "-1" {
				t.Fatalf("get %q", v)
			}
		}},
		{name: "cleanup policy normalized", file: "log.cleanup.policy=delete,compact\n", check: func(t *testing.T, c *Config) {
			if c.LogCleanupPolicy != "compact,delete" {
				t.Fatalf("policy %q", c.LogCleanupPolicy)
			}
		}},
		{name: "bad int", file: "num.partitions=x\n", wantErr: "num.partitions"},
		{name: "bad bool", file: "auto.create.topics.enable=yes\n", wantErr: "auto.create.topics.enable"},
		{name: "bad flush policy", file: "log.flush.policy=sometimes\n", wantErr: "log.flush.policy"},
		{name: "bad listener", file: "listeners=PLAINTEXT://nohost\n", wantErr: "listeners"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			props, err := ParseProperties(strings.NewReader(tt.file))
			if err != nil {
				t.Fatal(err)
			}
			c := Default()
			err = c.ApplyProperties(props, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestUnknownKeysWarn(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	props, _ := ParseProperties(strings.NewReader("no.such.key=1\n"))
	if err := Default().ApplyProperties(props, log); err != nil {
		t.Fatalf("unknown key is fatal: %v", err)
	}
	if !strings.Contains(buf.String(), "no.such.key") {
		t.Fatalf("no warning naming the key: %q", buf.String())
	}
}

func TestFromArgs(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "broker.properties")
	if err := os.WriteFile(file, []byte("node.id=7\nlog.dirs=/from/file\nlisteners=PLAINTEXT://127.0.0.1:1111\nnum.partitions=3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		check   func(*testing.T, *Config)
		wantErr bool
	}{
		{name: "defaults", args: nil, check: func(t *testing.T, c *Config) {
			if ls := c.ClientListeners(); len(ls) != 1 || ls[0].Addr != "127.0.0.1:9092" || c.DataDir != "./data" || c.NodeID != 1 {
				t.Fatalf("%+v", c)
			}
		}},
		{name: "file", args: []string{"--config", file}, check: func(t *testing.T, c *Config) {
			if ls := c.ClientListeners(); c.NodeID != 7 || c.DataDir != "/from/file" || len(ls) != 1 || ls[0].Addr != "127.0.0.1:1111" || c.NumPartitions != 3 {
				t.Fatalf("%+v", c)
			}
		}},
		{name: "flags win over file", args: []string{"--advertise", "example.com:9092", "--config", file, "--node-id", "9", "--data-dir", dir, "--listen", "127.0.0.2:2222"}, check: func(t *testing.T, c *Config) {
			ls := c.ClientListeners()
			if c.NodeID != 9 || c.DataDir != dir || len(ls) != 1 || ls[0].Addr != "127.0.0.2:2222" || ls[0].Advertised != "example.com:9092" || c.NumPartitions != 3 {
				t.Fatalf("%+v %+v", c, ls)
			}
			if !c.Explicit["node.id"] || !c.Explicit["num.partitions"] {
				t.Fatalf("explicit %v", c.Explicit)
			}
		}},
		{name: "bad flag", args: []string{"--listen", "nope"}, wantErr: true},
		{name: "missing file", args: []string{"--config", filepath.Join(dir, "missing")}, wantErr: true},
		{name: "stray argument", args: []string{"extra"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromArgs(tt.args, io.Discard, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if tt.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestAdvertisedHostPort(t *testing.T) {
	c := Default()
	if err := c.Set("listeners", "PLAINTEXT://0.0.0.0:9092"); err != nil {
		t.Fatal(err)
	}
	host, port, err := AdvertisedHostPort(c.ClientListeners()[0])
	if err != nil {
		t.Fatal(err)
	}
	if host == "0.0.0.0" || host == "" || port != 9092 {
		t.Fatalf("advertised %s:%d", host, port)
	}
}

func TestClusterTimingsValidate(t *testing.T) {
	tests := []struct {
		name    string
		props   map[string]string
		wantErr string // "" = valid
	}{
		{name: "defaults", props: nil},
		{name: "shorter lease", props: map[string]string{"broker.session.timeout.ms": "1500", "broker.heartbeat.interval.ms": "300"}},
		{name: "heartbeat half the lease", props: map[string]string{"broker.session.timeout.ms": "1000", "broker.heartbeat.interval.ms": "500"}, wantErr: "less than half of broker.session.timeout.ms"},
		{name: "heartbeat longer than the lease", props: map[string]string{"broker.session.timeout.ms": "400", "broker.heartbeat.interval.ms": "500"}, wantErr: "less than half"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			for k, v := range tt.props {
				if err := c.Set(k, v); err != nil {
					t.Fatal(err)
				}
			}
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}
