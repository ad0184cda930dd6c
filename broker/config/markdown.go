package config

import (
	"fmt"
	"strings"
)

// MarkdownTable renders the settings table for docs/broker.md, where a test
// keeps it equal to the code.
func MarkdownTable() string {
	var b strings.Builder
	b.WriteString("| setting | type | default | cluster default | allowed | dynamic | set by | meaning |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, s := range Settings() {
		def := "(unset)"
		if s.Default != "" {
			def = "`" + s.Default + "`"
		}
		cluster := ""
		if s.ClusterDefault != "" {
			cluster = "`" + s.ClusterDefault + "`"
		}
		dyn := ""
		if s.Dynamic {
			dyn = "yes"
		}
		owner := "user"
		if s.Owner == OwnerAgent {
			owner = "boot agent"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s | %s | %s |\n", s.Name, s.Type, def, cluster, escapeCell(s.Allowed), dyn, owner, escapeCell(s.Doc))
	}
	return b.String()
}

// TopicMarkdownTable renders the topic configs for docs/broker.md, where a
// test keeps it equal to the code.
func TopicMarkdownTable() string {
	var b strings.Builder
	b.WriteString("| topic config | inherits broker setting | allowed | meaning |\n")
	b.WriteString("|---|---|---|---|\n")
	for _, s := range TopicSettings() {
		inherits := "none (default empty)"
		if s.BrokerSetting != "" {
			inherits = "`" + s.BrokerSetting + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", s.Name, inherits, escapeCell(s.Allowed()), escapeCell(s.Doc))
	}
	return b.String()
}

func escapeCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
