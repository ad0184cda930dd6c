package config

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Property is one key=value pair of a Java-properties file, with the line it
// started on so errors and warnings can point at it.
type Property struct {
	Key   string
	Value string
	Line  int
}

// ParseProperties reads a Java-properties file: `key=value`, `key: value` or
// `key value`; `#` and `!` start comment lines; a line ending in an odd number
// of backslashes continues on the next line; the usual escapes (\t \n \r \\
// \uXXXX and \<char>) are decoded. It is the format Kafka's
// server.properties uses, so existing files can be reused unchanged.
// Later keys override earlier ones, as in Java.
func ParseProperties(r io.Reader) ([]Property, error) {
	var (
		props   []Property
		sc      = bufio.NewScanner(r)
		lineNo  int
		logical strings.Builder
		start   int
	)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if logical.Len() == 0 {
			line = strings.TrimLeft(line, " \t\f")
			if line == "" || line[0] == '#' || line[0] == '!' {
				continue
			}
			start = lineNo
		} else {
			// Continuation lines drop their leading white space.
			line = strings.TrimLeft(line, " \t\f")
		}
		if continues(line) {
			logical.WriteString(line[:len(line)-1])
			continue
		}
		logical.WriteString(line)
		p, err := parseLogicalLine(logical.String(), start)
		logical.Reset()
		if err != nil {
			return nil, err
		}
		props = append(props, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading properties: %w", err)
	}
	if logical.Len() > 0 {
		p, err := parseLogicalLine(logical.String(), start)
		if err != nil {
			return nil, err
		}
		props = append(props, p)
	}
	return props, nil
}

// continues reports whether a line ends with an unescaped backslash.
func continues(line string) bool {
	n := 0
	for i := len(line) - 1; i >= 0 && line[i] == '\\'; i-- {
		n++
	}
	return n%2 == 1
}

func parseLogicalLine(s string, line int) (Property, error) {
	// The key ends at the first unescaped '=', ':' or white space.
	end := len(s)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' {
			i++
			continue
		}
		if c == '=' || c == ':' || c == ' ' || c == '\t' || c == '\f' {
			end = i
			break
		}
	}
	rawKey := s[:end]
	rest := strings.TrimLeft(s[end:], " \t\f")
	if rest != "" && (rest[0] == '=' || rest[0] == ':') {
		rest = strings.TrimLeft(rest[1:], " \t\f")
	}
	key, err := unescape(rawKey)
	if err != nil {
		return Property{}, fmt.Errorf("line %d: key: %w", line, err)
	}
	val, err := unescape(rest)
	if err != nil {
		return Property{}, fmt.Errorf("line %d: value of %s: %w", line, key, err)
	}
	if key == "" {
		return Property{}, fmt.Errorf("line %d: empty key", line)
	}
	return Property{Key: key, Value: val, Line: line}, nil
}

func unescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i == len(s) {
			break // a lone trailing backslash is dropped, as Java does
		}
		switch s[i] {
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 'f':
			b.WriteByte('\f')
		case 'u':
			if i+5 > len(s) {
				return "", fmt.Errorf("short \\u escape in %q", s)
			}
			var r rune
			for _, h := range s[i+1 : i+5] {
				r <<= 4
				switch {
				case h >= '0' && h <= '9':
					r |= h - '0'
				case h >= 'a' && h <= 'f':
					r |= h - 'a' + 10
				case h >= 'A' && h <= 'F':
					r |= h - 'A' + 10
				default:
					return "", fmt.Errorf("bad \\u escape in %q", s)
				}
			}
			b.WriteRune(r)
			i += 4
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String(), nil
}
