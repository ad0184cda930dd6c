package config

import (
	"strings"
	"testing"
)

func TestThrottledReplicasValues(t *testing.T) {
	tests := []struct {
		in, canonical string
		wantErr       string // "" = accepted
		has           [][2]int32
		hasNot        [][2]int32
	}{
		{in: "", canonical: "", hasNot: [][2]int32{{0, 1}}},
		{in: " * ", canonical: "*", has: [][2]int32{{0, 1}, {7, 9}}},
		{in: "0:1, 1:2,0:1", canonical: "0:1,1:2", has: [][2]int32{{0, 1}, {1, 2}}, hasNot: [][2]int32{{0, 2}, {1, 1}}},
		{in: "0:1,*", wantErr: "* alone"},
		{in: "0-1", wantErr: `"0-1" is not partition:broker`},
		{in: "0:x", wantErr: "does not hold two non-negative ids"},
		{in: "-1:2", wantErr: "does not hold two non-negative ids"},
		{in: "0:1,", wantErr: `"" is not partition:broker`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			for _, name := range []string{LeaderThrottledReplicas, FollowerThrottledReplicas} {
				got, err := CanonicalTopic(name, tt.in)
				if tt.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), name) {
						t.Fatalf("%s=%q: error %v, want one naming the config and saying %q", name, tt.in, err, tt.wantErr)
					}
					continue
				}
				if err != nil || got != tt.canonical {
					t.Fatalf("%s=%q: %q, %v; want %q", name, tt.in, got, err, tt.canonical)
				}
			}
			if tt.wantErr != "" {
				return
			}
			tr, err := ParseThrottledReplicas(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			for _, pb := range tt.has {
				if !tr.Has(pb[0], pb[1]) {
					t.Errorf("%q does not throttle %d:%d", tt.in, pb[0], pb[1])
				}
			}
			for _, pb := range tt.hasNot {
				if tr.Has(pb[0], pb[1]) {
					t.Errorf("%q throttles %d:%d", tt.in, pb[0], pb[1])
				}
			}
		})
	}
}

func TestThrottleRatesRefuseZero(t *testing.T) {
	for _, name := range []string{"leader.replication.throttled.rate", "follower.replication.throttled.rate"} {
		if err := Validate(name, "0"); err == nil {
			t.Errorf("%s=0 accepted", name)
		}
		if err := Validate(name, "1048576"); err != nil {
			t.Errorf("%s=1048576: %v", name, err)
		}
		s, _ := Lookup(name)
		if !s.Dynamic {
			t.Errorf("%s is not dynamic", name)
		}
	}
}
