package config

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var updateDocs = flag.Bool("update", false, "rewrite the generated settings table in docs/broker.md")

const brokerDoc = "../../docs/broker.md"

// TestDocsMatchTable keeps the settings table of docs/broker.md equal to
// the code. Regenerate with: go test ./broker/config -run TestDocsMatchTable -update
func TestDocsMatchTable(t *testing.T) {
	b, err := os.ReadFile(brokerDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	const begin, end = "<!-- BEGIN GENERATED settings -->\n", "<!-- END GENERATED settings -->"
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("docs/broker.md: markers %q ... %q missing", begin, end)
	}
	want := MarkdownTable()
	if doc[i+len(begin):j] == want {
		return
	}
	if !*updateDocs {
		t.Fatalf("docs/broker.md settings table is out of date; run go test ./broker/config -run TestDocsMatchTable -update\nwant:\n%s", want)
	}
	if err := os.WriteFile(brokerDoc, []byte(doc[:i+len(begin)]+want+doc[j:]), 0o644); err != nil {
		t.Fatal(err)
	}
}
