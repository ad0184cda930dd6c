package cloudwatch

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

func TestPeriodStartAlignsToEpoch(t *testing.T) {
	tests := []struct {
		t      time.Time
		period time.Duration
		want   time.Time
	}{
		{time.Unix(1000, 0), 420 * time.Second, time.Unix(840, 0)},
		{time.Unix(840, 0), 420 * time.Second, time.Unix(840, 0)},
		{time.Unix(839, 999), 420 * time.Second, time.Unix(420, 0)},
		{time.Unix(3599, 0), time.Hour, time.Unix(0, 0)},
		{time.Unix(-1, 0), time.Minute, time.Unix(-60, 0)},
	}
	for _, tt := range tests {
		if got := periodStart(tt.t, tt.period); !got.Equal(tt.want) {
			t.Errorf("periodStart(%v, %v) = %v, want %v", tt.t.Unix(), tt.period, got.Unix(), tt.want.Unix())
		}
	}
}

func TestPercentile(t *testing.T) {
	values := []float64{5, 1, 4, 2, 3}
	ones := []float64{1, 1, 1, 1, 1}
	tests := []struct {
		pct  float64
		want float64
	}{
		{0, 1}, {20, 1}, {21, 2}, {50, 3}, {90, 5}, {100, 5},
	}
	for _, tt := range tests {
		if got := percentile(values, ones, tt.pct); got != tt.want {
			t.Errorf("p%v = %v, want %v", tt.pct, got, tt.want)
		}
	}
	// Counts weight the values: 1 once and 10 nine times puts the median at 10.
	if got := percentile([]float64{1, 10}, []float64{1, 9}, 50); got != 10 {
		t.Errorf("weighted p50 = %v, want 10", got)
	}
}

// FuzzMathExpression parses and evaluates arbitrary expressions against two small series: it
// must fail cleanly or succeed, never panic or recurse without bound.
func TestMathNestingBounded(t *testing.T) {
	// Within the length limit, nesting is bounded by maxMathDepth; beyond it, by the length.
	for _, src := range []string{strings.Repeat("-", 1000) + "1", strings.Repeat("(", 900) + "1" + strings.Repeat(")", 900),
		strings.Repeat("SUM(", 300) + "m1" + strings.Repeat(")", 300), strings.Repeat("(", 100000) + "1" + strings.Repeat(")", 100000)} {
		if _, _, err := parseMath(src); err == nil {
			t.Errorf("an expression of %d characters nested beyond the limits parsed", len(src))
		}
	}
	if _, _, err := parseMath(strings.Repeat("(", 50) + "m1" + strings.Repeat(")", 50)); err != nil {
		t.Errorf("moderate nesting refused: %v", err)
	}
}

func FuzzMathExpression(f *testing.F) {
	for _, seed := range []string{"SUM(METRICS())", "(m1 - m2) / m2 * 100", "MAX([m1, m2]) + -1", `SUM(METRICS("m"))`, "ABS(-m1)", "((((m1))))", "[m1,", "1e308*1e308"} {
		f.Add(seed)
	}
	env := &mathEnv{
		byID: func(id string) (timeSeries, error) {
			switch id {
			case "m1":
				return timeSeries{60: 1, 120: 2}, nil
			case "m2":
				return timeSeries{60: 3}, nil
			}
			return nil, errUnknownID
		},
		metrics: func(string) ([]timeSeries, error) {
			return []timeSeries{{60: 1}, {60: 2, 120: 4}}, nil
		},
	}
	f.Fuzz(func(t *testing.T, src string) {
		e, _, err := parseMath(src)
		if err != nil {
			return
		}
		_, _ = e.eval(env)
	})
}

var errUnknownID = errors.New("unknown id")

func TestPageOffsetAndPageOf(t *testing.T) {
	offsets := map[string]int{"": 0, "0": 0, "7": 7}
	for tok, want := range offsets {
		if got, err := pageOffset(tok); err != nil || got != want {
			t.Errorf("pageOffset(%q) = %d, %v; want %d", tok, got, err, want)
		}
	}
	for _, tok := range []string{"-1", "x", "1.5"} {
		_, err := pageOffset(tok)
		if e := awsapi.AsError(err); e.Code != "InvalidNextToken" {
			t.Errorf("pageOffset(%q) = %v, want InvalidNextToken", tok, err)
		}
	}

	all := []string{"a", "b", "c", "d", "e"}
	tests := []struct {
		start, size int
		want        []string
		wantNext    string // "" on the last page
	}{
		{0, 2, []string{"a", "b"}, "2"},
		{2, 2, []string{"c", "d"}, "4"},
		{4, 2, []string{"e"}, ""},
		{0, 5, all, ""},
		{5, 2, nil, ""},
		{9, 2, nil, ""},
	}
	for _, tt := range tests {
		got, next := pageOf(all, tt.start, tt.size)
		if !slices.Equal(got, tt.want) {
			t.Errorf("pageOf(start %d, size %d) = %v, want %v", tt.start, tt.size, got, tt.want)
		}
		gotNext := ""
		if next != nil {
			gotNext = *next
		}
		if gotNext != tt.wantNext || next != nil && *next == "" {
			t.Errorf("pageOf(start %d, size %d) next = %q, want %q", tt.start, tt.size, gotNext, tt.wantNext)
		}
	}
}
