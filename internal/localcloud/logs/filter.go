package logs

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// CloudWatch Logs filter patterns (FilterLogEvents' filterPattern), in the forms the local cloud
// evaluates:
//
//   - terms: `ERROR timeout` (every term), `?ERROR ?WARN` (any of the ?-terms), `ERROR -retry`
//     (a term that must not appear), `"exact phrase"`. A term matches where it stands as a word:
//     the characters around it are not letters or digits, so ERROR matches "[ERROR] x" but not
//     "ERRORS", as in CloudWatch Logs; terms are case-sensitive.
//   - regular expressions between % signs: `%timed? out%` (Go's RE2 syntax, which covers the
//     subset CloudWatch Logs accepts).
//   - JSON patterns for JSON events: `{ $.level = "ERROR" }`, `{ $.latency > 100 }`,
//     `{ ($.a = 1) && ($.b != "x*") || $.c IS TRUE }`, `{ $.x NOT EXISTS }`, `{ $.x IS NULL }`,
//     with selectors of fields and array elements ($.a.b[0]), `*` wildcards in string values, and
//     the numeric comparisons = != < <= > >=.
//
// Space-delimited patterns (`[ip, user, ...]`) are refused as not supported.

// matcher decides whether a log event's message matches a filter pattern.
type matcher func(message string) bool

// compileFilter parses a filter pattern; the error is the message of InvalidParameterException.
func compileFilter(pattern string) (matcher, error) {
	p := strings.TrimSpace(pattern)
	switch {
	case p == "":
		return func(string) bool { return true }, nil
	case strings.HasPrefix(p, "{"):
		return compileJSONPattern(p)
	case strings.HasPrefix(p, "["):
		return nil, errors.New("space-delimited filter patterns ([field, ...]) are not supported by the local cloud; use terms, %regex% or a JSON pattern")
	}
	return compileTerms(p)
}

// term is one element of a term pattern.
type term struct {
	text     string
	optional bool // ?term: any of them
	excluded bool // -term: must not appear
	re       *regexp.Regexp
}

func compileTerms(p string) (matcher, error) {
	var terms []term
	for rest := p; rest != ""; rest = strings.TrimLeft(rest, " \t") {
		var t term
		switch rest[0] {
		case '?':
			t.optional, rest = true, rest[1:]
		case '-':
			t.excluded, rest = true, rest[1:]
		}
		switch {
		case rest == "":
			return nil, fmt.Errorf("invalid filter pattern %q: an operator without a term", p)
		case rest[0] == '"':
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("invalid filter pattern %q: unterminated quoted term", p)
			}
			t.text, rest = rest[1:end+1], rest[end+2:]
		case rest[0] == '%':
			end := strings.IndexByte(rest[1:], '%')
			if end < 0 {
				return nil, fmt.Errorf("invalid filter pattern %q: unterminated %%regex%%", p)
			}
			expr := rest[1 : end+1]
			if strings.ContainsAny(expr, "()") {
				return nil, fmt.Errorf("invalid filter pattern %q: parentheses are not supported in %%regex%%", p)
			}
			re, err := regexp.Compile(expr)
			if err != nil {
				return nil, fmt.Errorf("invalid filter pattern %q: %v", p, err)
			}
			t.re, rest = re, rest[end+2:]
		default:
			end := strings.IndexAny(rest, " \t")
			if end < 0 {
				end = len(rest)
			}
			t.text, rest = rest[:end], rest[end:]
		}
		if t.text == "" && t.re == nil {
			return nil, fmt.Errorf("invalid filter pattern %q: an empty term", p)
		}
		terms = append(terms, t)
	}
	return func(msg string) bool {
		anyOptional, optionalHit := false, false
		for _, t := range terms {
			hit := t.matches(msg)
			switch {
			case t.excluded:
				if hit {
					return false
				}
			case t.optional:
				anyOptional = true
				optionalHit = optionalHit || hit
			default:
				if !hit {
					return false
				}
			}
		}
		return !anyOptional || optionalHit
	}, nil
}

func (t term) matches(msg string) bool {
	if t.re != nil {
		return t.re.MatchString(msg)
	}
	for from := 0; ; {
		i := strings.Index(msg[from:], t.text)
		if i < 0 {
			return false
		}
		start, end := from+i, from+i+len(t.text)
		if boundary(msg, start, t.text, true) && boundary(msg, end, t.text, false) {
			return true
		}
		from = start + 1
	}
}

// boundary reports whether a term may start (or end) at off: a term edge that is a letter or
// digit must not touch another letter or digit.
func boundary(msg string, off int, text string, start bool) bool {
	if start {
		if off == 0 || !isWordByte(text[0]) {
			return true
		}
		return !isWordByte(msg[off-1])
	}
	if off == len(msg) || !isWordByte(text[len(text)-1]) {
		return true
	}
	return !isWordByte(msg[off])
}

func isWordByte(b byte) bool {
	return b >= 0x80 || unicode.IsLetter(rune(b)) || unicode.IsDigit(rune(b))
}

// JSON patterns.

// jsonExpr is a parsed JSON pattern expression.
type jsonExpr interface {
	eval(doc any) bool
}

type jsonAnd struct{ a, b jsonExpr }
type jsonOr struct{ a, b jsonExpr }

func (e jsonAnd) eval(doc any) bool { return e.a.eval(doc) && e.b.eval(doc) }
func (e jsonOr) eval(doc any) bool  { return e.a.eval(doc) || e.b.eval(doc) }

// jsonTest compares the value a selector finds with a literal.
type jsonTest struct {
	selector []selectorStep
	op       string // = != < <= > >= EXISTS NOTEXISTS TRUE FALSE NULL
	str      string // for string comparisons
	num      float64
	isNum    bool
}

type selectorStep struct {
	field string
	index int // -1: a field step
}

func compileJSONPattern(p string) (matcher, error) {
	if !strings.HasSuffix(p, "}") {
		return nil, fmt.Errorf("invalid JSON filter pattern %q: it must end with }", p)
	}
	toks, err := tokenizeJSONPattern(p[1 : len(p)-1])
	if err != nil {
		return nil, fmt.Errorf("invalid JSON filter pattern %q: %v", p, err)
	}
	ps := &jsonParser{toks: toks}
	expr, err := ps.or()
	if err == nil && ps.pos != len(ps.toks) {
		err = fmt.Errorf("unexpected %q", ps.toks[ps.pos])
	}
	if err != nil {
		return nil, fmt.Errorf("invalid JSON filter pattern %q: %v", p, err)
	}
	return func(msg string) bool {
		var doc any
		if json.Unmarshal([]byte(msg), &doc) != nil {
			return false
		}
		return expr.eval(doc)
	}, nil
}

// tokenizeJSONPattern splits a JSON pattern's body into selectors, operators, literals and
// parentheses. Quoted strings keep their quotes so the parser can tell them apart.
func tokenizeJSONPattern(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			i++
		case c == '(' || c == ')':
			toks = append(toks, string(c))
			i++
		case c == '"':
			j := i + 1
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return nil, errors.New("unterminated string")
			}
			toks = append(toks, s[i:j+1])
			i = j + 1
		case strings.HasPrefix(s[i:], "&&") || strings.HasPrefix(s[i:], "||") || strings.HasPrefix(s[i:], "!=") ||
			strings.HasPrefix(s[i:], "<=") || strings.HasPrefix(s[i:], ">="):
			toks = append(toks, s[i:i+2])
			i += 2
		case c == '=' || c == '<' || c == '>':
			toks = append(toks, string(c))
			i++
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n()\"=<>!&|", rune(s[j])) {
				j++
			}
			if j == i {
				return nil, fmt.Errorf("unexpected %q", s[i:i+1])
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	return toks, nil
}

type jsonParser struct {
	toks []string
	pos  int
}

func (p *jsonParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *jsonParser) next() string {
	t := p.peek()
	p.pos++
	return t
}

// or := and { "||" and }; and := primary { "&&" primary }, && binding tighter, as CloudWatch
// Logs documents.
func (p *jsonParser) or() (jsonExpr, error) {
	left, err := p.and()
	for err == nil && p.peek() == "||" {
		p.next()
		var right jsonExpr
		if right, err = p.and(); err == nil {
			left = jsonOr{left, right}
		}
	}
	return left, err
}

func (p *jsonParser) and() (jsonExpr, error) {
	left, err := p.primary()
	for err == nil && p.peek() == "&&" {
		p.next()
		var right jsonExpr
		if right, err = p.primary(); err == nil {
			left = jsonAnd{left, right}
		}
	}
	return left, err
}

func (p *jsonParser) primary() (jsonExpr, error) {
	if p.peek() == "(" {
		p.next()
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.next() != ")" {
			return nil, errors.New("missing )")
		}
		return e, nil
	}
	sel, err := parseSelector(p.next())
	if err != nil {
		return nil, err
	}
	t := &jsonTest{selector: sel}
	switch op := p.next(); op {
	case "EXISTS":
		t.op = "EXISTS"
	case "NOT":
		if p.next() != "EXISTS" {
			return nil, errors.New("NOT must be followed by EXISTS")
		}
		t.op = "NOTEXISTS"
	case "IS":
		switch v := p.next(); v {
		case "TRUE", "FALSE", "NULL":
			t.op = v
		default:
			return nil, fmt.Errorf("IS must be followed by TRUE, FALSE or NULL, not %q", v)
		}
	case "=", "!=", "<", "<=", ">", ">=":
		t.op = op
		lit := p.next()
		if lit == "" || lit == "(" || lit == ")" || lit == "&&" || lit == "||" {
			return nil, fmt.Errorf("%s needs a value", op)
		}
		if n, err := strconv.ParseFloat(lit, 64); err == nil {
			t.num, t.isNum = n, true
		} else if strings.HasPrefix(lit, `"`) {
			t.str = strings.ReplaceAll(lit[1:len(lit)-1], `\"`, `"`)
		} else {
			t.str = lit
		}
		if !t.isNum && op != "=" && op != "!=" {
			return nil, fmt.Errorf("%s compares numbers, not %q", op, lit)
		}
	default:
		return nil, fmt.Errorf("expected an operator after %s, got %q", p.toks[p.pos-2], op)
	}
	return t, nil
}

// parseSelector reads $.a.b[0].c.
func parseSelector(s string) ([]selectorStep, error) {
	rest, ok := strings.CutPrefix(s, "$")
	if !ok {
		return nil, fmt.Errorf("a selector starts with $, not %q", s)
	}
	var steps []selectorStep
	for rest != "" {
		switch rest[0] {
		case '.':
			end := strings.IndexAny(rest[1:], ".[")
			if end < 0 {
				end = len(rest) - 1
			}
			name := rest[1 : end+1]
			if name == "" {
				return nil, fmt.Errorf("empty field in selector %q", s)
			}
			steps = append(steps, selectorStep{field: name, index: -1})
			rest = rest[end+1:]
		case '[':
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return nil, fmt.Errorf("unterminated [ in selector %q", s)
			}
			n, err := strconv.Atoi(rest[1:end])
			if err != nil || n < 0 {
				return nil, fmt.Errorf("bad array index in selector %q", s)
			}
			steps = append(steps, selectorStep{index: n})
			rest = rest[end+1:]
		default:
			return nil, fmt.Errorf("bad selector %q", s)
		}
	}
	if len(steps) == 0 {
		return nil, fmt.Errorf("selector %q selects nothing", s)
	}
	return steps, nil
}

func (t *jsonTest) eval(doc any) bool {
	v, found := doc, true
	for _, st := range t.selector {
		switch {
		case st.index >= 0:
			arr, ok := v.([]any)
			if !ok || st.index >= len(arr) {
				found = false
			} else {
				v = arr[st.index]
			}
		default:
			obj, ok := v.(map[string]any)
			if !ok {
				found = false
			} else if v, ok = obj[st.field]; !ok {
				found = false
			}
		}
		if !found {
			break
		}
	}
	switch t.op {
	case "EXISTS":
		return found
	case "NOTEXISTS":
		return !found
	case "NULL":
		return found && v == nil
	case "TRUE", "FALSE":
		b, ok := v.(bool)
		return found && ok && b == (t.op == "TRUE")
	}
	if !found {
		return false
	}
	if t.isNum {
		n, ok := v.(float64)
		if !ok {
			return false
		}
		switch t.op {
		case "=":
			return n == t.num
		case "!=":
			return n != t.num
		case "<":
			return n < t.num
		case "<=":
			return n <= t.num
		case ">":
			return n > t.num
		default:
			return n >= t.num
		}
	}
	var s string
	switch x := v.(type) {
	case string:
		s = x
	case bool:
		s = strconv.FormatBool(x)
	case float64:
		s = strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return false
	}
	eq := starGlob(t.str, s)
	if t.op == "!=" {
		return !eq
	}
	return eq
}

// starGlob matches s against a pattern whose only wildcard is '*' (any run of characters), as
// JSON filter patterns' string values are.
func starGlob(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, part := range parts[1 : len(parts)-1] {
		i := strings.Index(s, part)
		if i < 0 {
			return false
		}
		s = s[i+len(part):]
	}
	return len(s) >= len(last) && strings.HasSuffix(s, last)
}
