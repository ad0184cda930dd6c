// Package policy parses and evaluates AWS IAM policy documents (identity policies, role trust
// policies and KMS key policies) the way AWS's policy evaluation logic does for a single account:
// an explicit Deny wins, then any Allow, otherwise the request is implicitly denied.
//
// Parse checks the JSON structure; Validate adds the grammar IAM enforces for each kind of
// document (identity, trust, resource policies).
//
// Supported: Effect, Action/NotAction, Resource/NotResource, Principal/NotPrincipal ("*", AWS
// account ids and ARNs, Service principals), and Condition blocks with the string, ARN, numeric,
// date, Bool, BinaryEquals and Null operators, their IfExists variants and the
// ForAnyValue/ForAllValues set qualifiers. The IpAddress operators are accepted but not
// evaluated: they never match, so an Allow that depends on them does not apply (the safe
// direction for an emulator used to test least-privilege policies), and neither does a Deny.
// Policy variables (${aws:username}, any single-valued condition key) are substituted in
// Resource/NotResource and condition values of version 2012-10-17 documents.
//
// Evaluate answers the decision; Explain also says which statements decided (located in the
// document's text) and which condition keys the request lacked, as IAM's policy simulator
// reports them.
package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Effect is a statement's effect.
type Effect string

// The two effects a statement can have.
const (
	Allow Effect = "Allow"
	Deny  Effect = "Deny"
)

// Document is a parsed policy document.
type Document struct {
	Version    string
	Statements []Statement
}

// Statement is one statement of a policy document.
type Statement struct {
	Sid          string
	Effect       Effect
	Principal    *Principal // nil when the statement names no principal
	NotPrincipal *Principal
	Action       []string
	NotAction    []string
	Resource     []string
	NotResource  []string
	// Condition maps an operator (as written, e.g. "StringEquals" or
	// "ForAnyValue:StringLike") to condition keys and their values.
	Condition map[string]map[string][]string
	// Start and End locate the statement in the document's text: the line and column (both
	// from 1) just after its opening brace and just after its closing brace, as IAM's policy
	// simulator reports matched statements.
	Start, End Position
}

// Position is a place in a policy document's text.
type Position struct {
	Line, Column int
}

// Principal is the Principal (or NotPrincipal) element of a statement.
type Principal struct {
	Any     bool     // "*" or {"AWS": "*"}
	AWS     []string // account ids, account root ARNs, role/user/assumed-role ARNs
	Service []string // e.g. ec2.amazonaws.com
}

// Parse decodes and validates a policy document. The error text is suitable for AWS's
// MalformedPolicyDocument error.
func Parse(text string) (*Document, error) {
	var raw struct {
		Version   string          `json:"Version"`
		Statement json.RawMessage `json:"Statement"`
	}
	dec := json.NewDecoder(strings.NewReader(text))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("policy is not valid JSON: %w", err)
	}
	if len(raw.Statement) == 0 {
		return nil, errors.New("policy has no Statement")
	}
	var rawStatements []json.RawMessage
	if raw.Statement[0] == '[' {
		if err := json.Unmarshal(raw.Statement, &rawStatements); err != nil {
			return nil, fmt.Errorf("decoding Statement: %w", err)
		}
	} else {
		rawStatements = []json.RawMessage{raw.Statement}
	}
	if len(rawStatements) == 0 {
		return nil, errors.New("policy has an empty Statement list")
	}
	doc := &Document{Version: raw.Version}
	for i, rs := range rawStatements {
		st, err := parseStatement(rs)
		if err != nil {
			return nil, fmt.Errorf("statement %d: %w", i+1, err)
		}
		doc.Statements = append(doc.Statements, st)
	}
	if spans := statementSpans(text); len(spans) == len(doc.Statements) {
		for i, sp := range spans {
			doc.Statements[i].Start = position(text, sp[0]+1)
			doc.Statements[i].End = position(text, sp[1])
		}
	}
	return doc, nil
}

// statementSpans returns the byte offsets of each statement object in a document that Parse
// accepted: the offset of its '{' and the offset just after its '}'. It returns nil if the
// text cannot be walked (then positions stay zero).
func statementSpans(text string) [][2]int {
	dec := json.NewDecoder(strings.NewReader(text))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	// skipTo finds the next '{' from off: only whitespace, ':', ',' and '[' can come before a
	// statement object.
	skipTo := func(off int) int {
		for off < len(text) && text[off] != '{' {
			off++
		}
		return off
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return nil
		}
		if key != "Statement" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil
			}
			continue
		}
		var spans [][2]int
		next := func() bool {
			start := skipTo(int(dec.InputOffset()))
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return false
			}
			spans = append(spans, [2]int{start, int(dec.InputOffset())})
			return true
		}
		t, err := dec.Token()
		if err != nil {
			return nil
		}
		if t != json.Delim('[') {
			// A single statement object: the token just read was its '{'. Walk back to it.
			start := strings.LastIndexByte(text[:dec.InputOffset()], '{')
			depth := 1
			for depth > 0 {
				t, err := dec.Token()
				if err != nil {
					return nil
				}
				switch t {
				case json.Delim('{'), json.Delim('['):
					depth++
				case json.Delim('}'), json.Delim(']'):
					depth--
				}
			}
			return [][2]int{{start, int(dec.InputOffset())}}
		}
		for dec.More() {
			if !next() {
				return nil
			}
		}
		return spans
	}
	return nil
}

// position converts a byte offset of text to a line and column, both counted from 1.
func position(text string, off int) Position {
	off = min(off, len(text))
	line := 1 + strings.Count(text[:off], "\n")
	col := off - strings.LastIndexByte(text[:off], '\n')
	return Position{Line: line, Column: col}
}

type rawStatement struct {
	Sid          string                                `json:"Sid"`
	Effect       string                                `json:"Effect"`
	Principal    json.RawMessage                       `json:"Principal"`
	NotPrincipal json.RawMessage                       `json:"NotPrincipal"`
	Action       stringOrList                          `json:"Action"`
	NotAction    stringOrList                          `json:"NotAction"`
	Resource     stringOrList                          `json:"Resource"`
	NotResource  stringOrList                          `json:"NotResource"`
	Condition    map[string]map[string]json.RawMessage `json:"Condition"`
}

func parseStatement(data json.RawMessage) (Statement, error) {
	var rs rawStatement
	if err := json.Unmarshal(data, &rs); err != nil {
		return Statement{}, fmt.Errorf("decoding statement: %w", err)
	}
	st := Statement{
		Sid:         rs.Sid,
		Effect:      Effect(rs.Effect),
		Action:      rs.Action,
		NotAction:   rs.NotAction,
		Resource:    rs.Resource,
		NotResource: rs.NotResource,
	}
	if st.Effect != Allow && st.Effect != Deny {
		return Statement{}, fmt.Errorf("invalid Effect %q (want Allow or Deny)", rs.Effect)
	}
	if len(st.Action) == 0 && len(st.NotAction) == 0 {
		return Statement{}, errors.New("statement needs Action or NotAction")
	}
	if len(st.Action) > 0 && len(st.NotAction) > 0 {
		return Statement{}, errors.New("statement has both Action and NotAction")
	}
	if len(st.Resource) > 0 && len(st.NotResource) > 0 {
		return Statement{}, errors.New("statement has both Resource and NotResource")
	}
	var err error
	if st.Principal, err = parsePrincipal(rs.Principal); err != nil {
		return Statement{}, fmt.Errorf("in Principal: %w", err)
	}
	if st.NotPrincipal, err = parsePrincipal(rs.NotPrincipal); err != nil {
		return Statement{}, fmt.Errorf("in NotPrincipal: %w", err)
	}
	if len(rs.Condition) > 0 {
		st.Condition = make(map[string]map[string][]string, len(rs.Condition))
		for op, keys := range rs.Condition {
			m := make(map[string][]string, len(keys))
			for key, rv := range keys {
				vals, err := conditionValues(rv)
				if err != nil {
					return Statement{}, fmt.Errorf("in Condition %s %s: %w", op, key, err)
				}
				m[key] = vals
			}
			st.Condition[op] = m
		}
	}
	return st, nil
}

func parsePrincipal(data json.RawMessage) (*Principal, error) {
	if len(data) == 0 || string(data) == "null" {
		return nil, nil
	}
	var star string
	if err := json.Unmarshal(data, &star); err == nil {
		if star != "*" {
			return nil, fmt.Errorf("invalid principal %q", star)
		}
		return &Principal{Any: true}, nil
	}
	var m map[string]stringOrList
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("decoding principal: %w", err)
	}
	p := &Principal{}
	for kind, vals := range m {
		switch kind {
		case "AWS":
			for _, v := range vals {
				if v == "*" {
					p.Any = true
				}
			}
			p.AWS = append(p.AWS, vals...)
		case "Service":
			p.Service = append(p.Service, vals...)
		case "Federated", "CanonicalUser":
			// Never matched by the local cloud, which has no federation; kept valid.
		default:
			return nil, fmt.Errorf("unknown principal type %q", kind)
		}
	}
	return p, nil
}

// stringOrList decodes a JSON string or list of strings.
type stringOrList []string

func (s *stringOrList) UnmarshalJSON(data []byte) error {
	var one string
	if err := json.Unmarshal(data, &one); err == nil {
		*s = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(data, &many); err != nil {
		return fmt.Errorf("want a string or a list of strings: %w", err)
	}
	*s = many
	return nil
}

// conditionValues accepts a string, bool, number or a list of them, as IAM does.
func conditionValues(data json.RawMessage) ([]string, error) {
	var list []json.RawMessage
	if len(data) > 0 && data[0] == '[' {
		if err := json.Unmarshal(data, &list); err != nil {
			return nil, fmt.Errorf("decoding values: %w", err)
		}
	} else {
		list = []json.RawMessage{data}
	}
	out := make([]string, 0, len(list))
	for _, item := range list {
		var v any
		if err := json.Unmarshal(item, &v); err != nil {
			return nil, fmt.Errorf("decoding value: %w", err)
		}
		switch x := v.(type) {
		case string:
			out = append(out, x)
		case bool:
			out = append(out, strconv.FormatBool(x))
		case float64:
			out = append(out, strings.TrimSpace(string(item)))
		default:
			return nil, fmt.Errorf("unsupported condition value %s", item)
		}
	}
	return out, nil
}
