package main

import "testing"

func TestProviderProgressLine(t *testing.T) {
	tests := []struct {
		line string
		want string
		ok   bool
	}{
		{
			line: `2026-11-25T08:58:15.258Z [INFO]  provider.terraform-provider-tributary: launching broker instance: @caller=/x/ensure.go:1 @module=tributary node_id=1 tf_req_id=abc tf_rpc=ApplyResourceChange timestamp=2026-11-25T08:58:15.258Z`,
			want: "launching broker instance: node_id=1",
			ok:   true,
		},
		{line: `2026-11-25T08:58:15.258Z [DEBUG] provider.terraform-provider-tributary: something: @module=tributary`, ok: false},
		{line: `2026-11-25T08:58:15.258Z [INFO]  provider: configuring server automatic mTLS: timestamp=x`, ok: false},
	}
	for _, tt := range tests {
		m := providerLine.FindStringSubmatch(tt.line)
		if (m != nil) != tt.ok {
			t.Errorf("%q: matched = %v, want %v", tt.line, m != nil, tt.ok)
			continue
		}
		if tt.ok {
			if got := tidyFields(m[1]); got != tt.want {
				t.Errorf("tidyFields = %q, want %q", got, tt.want)
			}
		}
	}
}
