package groups

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestNewRejectsInvalidConfig(t *testing.T) {
	tests := []struct {
		name   string
		adjust func(*Config)
		want   string
	}{
		{"negative initial delay", func(c *Config) { c.InitialRebalanceDelay = -time.Second }, "group.initial.rebalance.delay.ms"},
		{"zero min session", func(c *Config) { c.MinSessionTimeout = 0 }, "group.min.session.timeout.ms"},
		{"max below min", func(c *Config) { c.MaxSessionTimeout = time.Second }, "group.max.session.timeout.ms"},
		{"negative group size", func(c *Config) { c.MaxGroupSize = -1 }, "group.max.size"},
		{"zero retention", func(c *Config) { c.OffsetsRetention = 0 }, "offsets.retention.minutes"},
		{"zero check interval", func(c *Config) { c.OffsetsRetentionCheckInterval = 0 }, "offsets.retention.check.interval.ms"},
		{"negative metadata size", func(c *Config) { c.OffsetMetadataMaxBytes = -1 }, "offset.metadata.max.bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.adjust(&cfg)
			c, err := New(context.Background(), NewMemoryLog(), cfg)
			if err == nil {
				_ = c.Close()
				t.Fatal("New accepted an invalid config")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not name %s", err, tt.want)
			}
		})
	}
	if _, err := New(context.Background(), nil, DefaultConfig()); err == nil {
		t.Fatal("New accepted a nil offsets log")
	}
	c, err := New(context.Background(), NewMemoryLog(), DefaultConfig())
	if err != nil {
		t.Fatalf("New with the defaults: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
