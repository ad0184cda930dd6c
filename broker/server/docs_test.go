package server

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

var updateDocs = flag.Bool("update", false, "rewrite the generated tables in docs/broker.md")

const brokerDoc = "../../docs/broker.md"

// TestDocsMatchCode checks that the generated table of API keys and
// versions in docs/broker.md is exactly what the code serves; broker/config
// keeps the settings and topic-configs tables. Regenerate with: go test ./broker/server -run TestDocsMatchCode -update
func TestDocsMatchCode(t *testing.T) {
	b, err := os.ReadFile(brokerDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	sections := map[string]string{
		"api-keys": apiKeysTable(),
	}
	for name, want := range sections {
		begin := fmt.Sprintf("<!-- BEGIN GENERATED %s -->\n", name)
		end := fmt.Sprintf("<!-- END GENERATED %s -->", name)
		i, j := strings.Index(doc, begin), strings.Index(doc, end)
		if i < 0 || j < i {
			t.Fatalf("%s: markers %q ... %q missing", filepath.Base(brokerDoc), begin, end)
		}
		got := doc[i+len(begin) : j]
		if got == want {
			continue
		}
		if *updateDocs {
			doc = doc[:i+len(begin)] + want + doc[j:]
			continue
		}
		t.Errorf("%s section %s is out of date; run go test ./broker/server -run TestDocsMatchCode -update\nwant:\n%s", brokerDoc, name, want)
	}
	if *updateDocs {
		if err := os.WriteFile(brokerDoc, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func apiKeysTable() string {
	var b strings.Builder
	b.WriteString("| key | API | versions served |\n|---:|---|---|\n")
	for _, k := range SupportedAPIs() {
		fmt.Fprintf(&b, "| %d | %s | %d-%d |\n", k.ApiKey, kmsg.NameForKey(k.ApiKey), k.MinVersion, k.MaxVersion)
	}
	return b.String()
}
