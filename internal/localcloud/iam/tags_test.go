package iam

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

func TestTagHelpers(t *testing.T) {
	start := []tag{{Key: "env", Value: "dev"}, {Key: "team", Value: "data"}}
	tests := []struct {
		name     string
		tag      params
		untag    []string
		want     []tag
		wantCode string
	}{
		{
			name: "add and replace",
			tag:  params{"Tags.member.1.Key": {"env"}, "Tags.member.1.Value": {"prod"}, "Tags.member.2.Key": {"owner"}, "Tags.member.2.Value": {"ops"}},
			want: []tag{{Key: "env", Value: "prod"}, {Key: "team", Value: "data"}, {Key: "owner", Value: "ops"}},
		},
		{
			name:  "remove keys, unknown ones ignored",
			untag: []string{"env", "nope"},
			want:  []tag{{Key: "team", Value: "data"}},
		},
		{name: "over 50 tags keeps the old tags", tag: manyTags(49), wantCode: "LimitExceeded", want: start},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tags := append([]tag{}, start...)
			if tt.tag != nil {
				err := tagResource(&tags, tt.tag)
				if tt.wantCode != "" {
					if e := awsapi.AsError(err); e.Code != tt.wantCode {
						t.Fatalf("err = %v, want code %s", err, tt.wantCode)
					}
					if !reflect.DeepEqual(tags, tt.want) {
						t.Fatalf("a refused tag call changed the tags to %v, want %v", tags, tt.want)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if tt.untag != nil {
				p := params{}
				for i, k := range tt.untag {
					p[fmt.Sprintf("TagKeys.member.%d", i+1)] = []string{k}
				}
				untagResource(&tags, p)
			}
			if !reflect.DeepEqual(tags, tt.want) {
				t.Errorf("tags = %v, want %v", tags, tt.want)
			}
			listed := listTags(tags)
			if !reflect.DeepEqual(listed.Tags, tt.want) {
				t.Errorf("listTags = %v, want %v", listed.Tags, tt.want)
			}
			listed.Tags[0].Value = "changed"
			if tags[0].Value == "changed" {
				t.Error("listTags shares its slice with the resource")
			}
		})
	}
}

func manyTags(n int) params {
	p := params{}
	for i := 1; i <= n; i++ {
		p[fmt.Sprintf("Tags.member.%d.Key", i)] = []string{fmt.Sprintf("k%d", i)}
		p[fmt.Sprintf("Tags.member.%d.Value", i)] = []string{"v"}
	}
	return p
}

func TestLookupByNameAndNameAndPath(t *testing.T) {
	byName := map[string]int{"alice": 1}
	if v, err := lookupByName(byName, "UserName", "ALICE", "The user with name %s cannot be found."); err != nil || v != 1 {
		t.Errorf("lookup ALICE = %v, %v; want 1 (names are case-insensitive)", v, err)
	}
	tests := []struct {
		name, wantCode, wantMessage string
	}{
		{"", "ValidationError", "1 validation error detected: Value null at 'userName' failed to satisfy constraint: Member must not be null"},
		{"bob", "NoSuchEntity", "The user with name bob cannot be found."},
	}
	for _, tt := range tests {
		_, err := lookupByName(byName, "UserName", tt.name, "The user with name %s cannot be found.")
		if e := awsapi.AsError(err); e.Code != tt.wantCode || e.Message != tt.wantMessage {
			t.Errorf("lookup %q: err = %v, want %s %q", tt.name, err, tt.wantCode, tt.wantMessage)
		}
	}

	name, path, err := nameAndPath(params{"RoleName": {"r1"}}, "RoleName", 64)
	if err != nil || name != "r1" || path != "/" {
		t.Errorf("nameAndPath = %q, %q, %v; want r1, /", name, path, err)
	}
	for _, p := range []params{
		{},
		{"RoleName": {"bad name"}},
		{"RoleName": {"r1"}, "Path": {"no-slashes"}},
	} {
		if _, _, err := nameAndPath(p, "RoleName", 64); err == nil {
			t.Errorf("nameAndPath(%v) accepted bad input", p)
		}
	}
}
