package ec2

import (
	"reflect"
	"testing"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

func TestSelectMatching(t *testing.T) {
	type res struct {
		az   string
		tags tags
	}
	byID := map[string]res{
		"r-3": {"eu-west-1a", tags{"team": "data"}},
		"r-1": {"eu-west-1a", tags{"team": "web"}},
		"r-2": {"eu-west-1b", nil},
	}
	view := func(r res) (tags, fieldFunc) {
		return r.tags, func(name string) ([]string, bool) {
			if name == "availability-zone" {
				return []string{r.az}, true
			}
			return nil, false
		}
	}
	tests := []struct {
		name     string
		ids      []string
		filters  []filter
		want     []string
		wantCode string
	}{
		{name: "all in id order", want: []string{"r-1", "r-2", "r-3"}},
		{name: "named ids only", ids: []string{"r-3", "r-2"}, want: []string{"r-2", "r-3"}},
		{name: "field filter", filters: []filter{{"availability-zone", []string{"*-1a"}}}, want: []string{"r-1", "r-3"}},
		{name: "tag filter", filters: []filter{{"tag:team", []string{"data"}}}, want: []string{"r-3"}},
		{name: "filters and ids together", ids: []string{"r-1", "r-2"}, filters: []filter{{"tag-key", []string{"team"}}}, want: []string{"r-1"}},
		{name: "nothing matches", filters: []filter{{"availability-zone", []string{"us-east-1a"}}}},
		{name: "unknown filter fails", filters: []filter{{"color", []string{"red"}}}, wantCode: "InvalidParameterValue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := selectMatching(byID, tt.ids, tt.filters, view)
			if tt.wantCode != "" {
				if e := awsapi.AsError(err); e.Code != tt.wantCode {
					t.Fatalf("err = %v, want code %s", err, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestKeepWhereAndMissingKeys(t *testing.T) {
	byID := map[string]int{"a": 1, "b": 2, "c": 3}
	odd := keepWhere(byID, func(v int) bool { return v%2 == 1 })
	if want := map[string]int{"a": 1, "c": 3}; !reflect.DeepEqual(odd, want) {
		t.Errorf("keepWhere = %v, want %v", odd, want)
	}
	if len(byID) != 3 {
		t.Errorf("keepWhere changed its input: %v", byID)
	}
	if got, want := missingKeys(byID, []string{"z", "a", "y"}), []string{"z", "y"}; !reflect.DeepEqual(got, want) {
		t.Errorf("missingKeys = %v, want %v", got, want)
	}
	if got := missingKeys(byID, []string{"a", "b"}); got != nil {
		t.Errorf("missingKeys of held ids = %v, want none", got)
	}
}
