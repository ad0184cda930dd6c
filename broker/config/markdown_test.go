package config

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var updateDocs = flag.Bool("update", false, "rewrite the generated settings and topic-configs tables in docs/broker.md")

const brokerDoc = "../../docs/broker.md"

// TestDocsMatchTable keeps the settings and topic-configs tables of
// docs/broker.md equal to the code. Regenerate with:
// go test ./broker/config -run TestDocsMatchTable -update
func TestDocsMatchTable(t *testing.T) {
	b, err := os.ReadFile(brokerDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	changed := false
	for _, section := range []struct{ name, want string }{
		{"settings", MarkdownTable()},
		{"topic-configs", TopicMarkdownTable()},
	} {
		begin, end := "<!-- BEGIN GENERATED "+section.name+" -->\n", "<!-- END GENERATED "+section.name+" -->"
		i, j := strings.Index(doc, begin), strings.Index(doc, end)
		if i < 0 || j < i {
			t.Fatalf("docs/broker.md: markers %q ... %q missing", begin, end)
		}
		if doc[i+len(begin):j] == section.want {
			continue
		}
		if !*updateDocs {
			t.Errorf("docs/broker.md %s table is out of date; run go test ./broker/config -run TestDocsMatchTable -update\nwant:\n%s", section.name, section.want)
			continue
		}
		doc = doc[:i+len(begin)] + section.want + doc[j:]
		changed = true
	}
	if changed {
		if err := os.WriteFile(brokerDoc, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
