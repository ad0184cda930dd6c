package metrics

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestDocsListEveryMetric: docs/broker-metrics.md names every metric the
// collector describes (allDescs), so a metric added without its row is
// caught here rather than by an operator looking for it.
func TestDocsListEveryMetric(t *testing.T) {
	b, err := os.ReadFile("../../docs/broker-metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	for _, d := range allDescs {
		m := fqName.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("no name in descriptor %s", d)
		}
		if !strings.Contains(doc, m[1]) {
			t.Errorf("docs/broker-metrics.md does not list %s", m[1])
		}
	}
}
