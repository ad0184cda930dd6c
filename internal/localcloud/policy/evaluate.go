package policy

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Decision is the outcome of evaluating policies against a request.
type Decision int

// Decisions, from AWS's evaluation logic: an explicit Deny overrides any Allow; no matching
// statement at all is an implicit deny.
const (
	ImplicitDeny Decision = iota
	Allowed
	ExplicitDeny
)

func (d Decision) String() string {
	switch d {
	case Allowed:
		return "Allow"
	case ExplicitDeny:
		return "ExplicitDeny"
	default:
		return "ImplicitDeny"
	}
}

// Caller identifies who makes a request, for Principal matching in trust and key policies.
type Caller struct {
	Account string   // 12-digit account id
	ARNs    []string // every ARN the caller is known by (session ARN, role ARN, user ARN)
	Service string   // service principal (ec2.amazonaws.com) when an AWS service calls
}

// Request is one authorization question: may Caller perform Action on Resource?
type Request struct {
	Caller   Caller
	Action   string // service:Operation, e.g. kms:Decrypt
	Resource string // resource ARN; "*" for actions without a resource
	// Context holds condition keys (case-insensitive) and their values, e.g.
	// "kms:EncryptionContext:cluster" -> ["prod"]. Multi-valued keys hold several values.
	Context map[string][]string
}

// Evaluate evaluates every statement of every document against the request.
func Evaluate(req Request, docs ...*Document) Decision {
	return Explain(req, docs...).Decision
}

// StatementRef names one statement: docs[Document].Statements[Statement] of an Explain call.
type StatementRef struct {
	Document  int
	Statement int
}

// Explanation is a decision with its reasons, as IAM's policy simulator reports them.
type Explanation struct {
	Decision Decision
	// Matched are the statements that decided: every matching Deny for ExplicitDeny, every
	// matching Allow for Allowed, none for ImplicitDeny.
	Matched []StatementRef
	// MissingKeys are the condition keys (sorted, as written in the policies) that statements
	// applying to the caller, action and resource test but the request does not supply. Keys
	// tested only by Null, which is about absence, are not missing.
	MissingKeys []string
}

// Explain evaluates every statement of every document against the request and says which
// statements decided and which condition keys the request lacked.
func Explain(req Request, docs ...*Document) Explanation {
	ctx := normaliseContext(req.Context)
	var allows, denies []StatementRef
	missing := map[string]bool{}
	for di, doc := range docs {
		if doc == nil {
			continue
		}
		vars := doc.Version == "2012-10-17"
		for si := range doc.Statements {
			st := &doc.Statements[si]
			if !st.appliesTo(req, ctx, vars) {
				continue
			}
			for op, keys := range st.Condition {
				if strings.HasSuffix(op, "Null") {
					continue
				}
				for key := range keys {
					if len(ctx[strings.ToLower(key)]) == 0 {
						missing[key] = true
					}
				}
			}
			if !st.conditionsHold(ctx, vars) {
				continue
			}
			ref := StatementRef{Document: di, Statement: si}
			if st.Effect == Deny {
				denies = append(denies, ref)
			} else {
				allows = append(allows, ref)
			}
		}
	}
	out := Explanation{Decision: ImplicitDeny}
	switch {
	case len(denies) > 0:
		out.Decision, out.Matched = ExplicitDeny, denies
	case len(allows) > 0:
		out.Decision, out.Matched = Allowed, allows
	}
	if len(missing) > 0 {
		out.MissingKeys = slices.Sorted(maps.Keys(missing))
	}
	return out
}

func normaliseContext(in map[string][]string) map[string][]string {
	out := make(map[string][]string, len(in))
	for k, v := range in {
		out[strings.ToLower(k)] = v
	}
	return out
}

// appliesTo reports whether the statement's principal, action and resource elements match the
// request; vars enables policy variables (${aws:username}), which only version 2012-10-17
// documents have.
func (st *Statement) appliesTo(req Request, ctx map[string][]string, vars bool) bool {
	if st.Principal != nil && !st.Principal.matches(req.Caller) {
		return false
	}
	if st.NotPrincipal != nil && st.NotPrincipal.matches(req.Caller) {
		return false
	}
	switch {
	case len(st.Action) > 0:
		if !anyGlob(st.Action, req.Action, true) {
			return false
		}
	case len(st.NotAction) > 0:
		if anyGlob(st.NotAction, req.Action, true) {
			return false
		}
	}
	switch {
	case len(st.Resource) > 0:
		if !anyGlob(expand(st.Resource, ctx, vars), req.Resource, false) {
			return false
		}
	case len(st.NotResource) > 0:
		if anyGlob(expand(st.NotResource, ctx, vars), req.Resource, false) {
			return false
		}
	}
	return true
}

// conditionsHold reports whether every condition of the statement holds for the request
// context.
func (st *Statement) conditionsHold(ctx map[string][]string, vars bool) bool {
	for op, keys := range st.Condition {
		for key, values := range keys {
			if !conditionHolds(op, ctx[strings.ToLower(key)], expand(values, ctx, vars)) {
				return false
			}
		}
	}
	return true
}

// expand substitutes policy variables in patterns when the document has them.
func expand(patterns []string, ctx map[string][]string, vars bool) []string {
	if !vars {
		return patterns
	}
	return substituteAll(patterns, ctx)
}

func (p *Principal) matches(c Caller) bool {
	if p.Any {
		return true
	}
	for _, want := range p.AWS {
		if isAccountPrincipal(want, c.Account) {
			return true
		}
		for _, arn := range c.ARNs {
			if want == arn {
				return true
			}
		}
	}
	for _, svc := range p.Service {
		if c.Service != "" && strings.EqualFold(svc, c.Service) {
			return true
		}
	}
	return false
}

// isAccountPrincipal reports whether principal names the whole account (its id or its root
// ARN), which in AWS delegates to the account's identity policies; the local cloud has one
// account, so such a principal matches every caller of it.
func isAccountPrincipal(principal, account string) bool {
	if account == "" {
		return false
	}
	return principal == account || principal == "arn:aws:iam::"+account+":root"
}

// substituteAll replaces the policy variables of each pattern with the request's values; a
// pattern naming a variable the request lacks can match nothing, so it is dropped.
func substituteAll(patterns []string, ctx map[string][]string) []string {
	out := make([]string, 0, len(patterns))
	for _, p := range patterns {
		if v, ok := substitute(p, ctx); ok {
			out = append(out, v)
		}
	}
	return out
}

// substitute expands ${key} from single-valued condition keys and ${$} to "$". (The ${*} and
// ${?} escapes, for literal wildcard characters, are not supported.)
func substitute(pattern string, ctx map[string][]string) (string, bool) {
	if !strings.Contains(pattern, "${") {
		return pattern, true
	}
	var b strings.Builder
	rest := pattern
	for {
		i := strings.Index(rest, "${")
		if i < 0 {
			b.WriteString(rest)
			return b.String(), true
		}
		j := strings.Index(rest[i:], "}")
		if j < 0 {
			b.WriteString(rest)
			return b.String(), true
		}
		b.WriteString(rest[:i])
		name := rest[i+2 : i+j]
		if name == "$" {
			b.WriteString("$")
		} else {
			vals := ctx[strings.ToLower(name)]
			if len(vals) != 1 {
				return "", false
			}
			b.WriteString(vals[0])
		}
		rest = rest[i+j+1:]
	}
}

func anyGlob(patterns []string, s string, foldCase bool) bool {
	for _, p := range patterns {
		if foldCase {
			if Glob(strings.ToLower(p), strings.ToLower(s)) {
				return true
			}
		} else if Glob(p, s) {
			return true
		}
	}
	return false
}

// Glob matches s against an IAM wildcard pattern: '*' matches any run of characters (including
// none) and '?' matches exactly one character.
func Glob(pattern, s string) bool {
	// Iterative matcher with single-star backtracking: linear in practice, no recursion.
	p, i := 0, 0
	starP, starI := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			starP, starI = p, i
			p++
		case starP >= 0:
			p = starP + 1
			starI++
			i = starI
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// conditionHolds evaluates one condition operator for one key. have is the request's values
// for the key (nil when the key is absent), want the policy's values.
func conditionHolds(op string, have, want []string) bool {
	base := op
	qualifier := ""
	if q, rest, ok := strings.Cut(op, ":"); ok {
		qualifier, base = q, rest
	}
	ifExists := false
	if b, ok := strings.CutSuffix(base, "IfExists"); ok {
		base, ifExists = b, true
	}
	if base == "Null" {
		// "Null": "true" means the key must be absent.
		absent := len(have) == 0
		for _, w := range want {
			if strings.EqualFold(w, "true") == absent {
				return true
			}
		}
		return false
	}
	match, negated, known := operator(base)
	if !known {
		return false
	}
	if len(have) == 0 {
		switch {
		case ifExists:
			return true
		case qualifier == "ForAllValues":
			return true
		case qualifier == "ForAnyValue":
			return false
		default:
			// Negated operators match when the key is missing, as in AWS.
			return negated
		}
	}
	valueOK := func(v string) bool {
		for _, w := range want {
			if match(v, w) {
				return !negated
			}
		}
		return negated
	}
	if qualifier == "ForAllValues" {
		for _, v := range have {
			if !valueOK(v) {
				return false
			}
		}
		return true
	}
	if negated && qualifier == "" {
		// A plain negated operator holds only when no request value matches any policy value.
		for _, v := range have {
			if !valueOK(v) {
				return false
			}
		}
		return true
	}
	for _, v := range have {
		if valueOK(v) {
			return true
		}
	}
	return false
}

// operator returns the positive comparison for a base operator name and whether it is negated.
func operator(name string) (match func(have, want string) bool, negated, known bool) {
	switch name {
	case "StringEquals":
		return stringEquals, false, true
	case "StringNotEquals":
		return stringEquals, true, true
	case "StringEqualsIgnoreCase":
		return strings.EqualFold, false, true
	case "StringNotEqualsIgnoreCase":
		return strings.EqualFold, true, true
	case "StringLike", "ArnLike", "ArnEquals":
		return globMatch, false, true
	case "StringNotLike", "ArnNotLike", "ArnNotEquals":
		return globMatch, true, true
	case "Bool":
		return strings.EqualFold, false, true
	case "BinaryEquals":
		return stringEquals, false, true
	case "NumericEquals":
		return numeric(func(a, b float64) bool { return a == b }), false, true
	case "NumericNotEquals":
		return numeric(func(a, b float64) bool { return a == b }), true, true
	case "NumericLessThan":
		return numeric(func(a, b float64) bool { return a < b }), false, true
	case "NumericLessThanEquals":
		return numeric(func(a, b float64) bool { return a <= b }), false, true
	case "NumericGreaterThan":
		return numeric(func(a, b float64) bool { return a > b }), false, true
	case "NumericGreaterThanEquals":
		return numeric(func(a, b float64) bool { return a >= b }), false, true
	case "DateEquals":
		return date(func(a, b time.Time) bool { return a.Equal(b) }), false, true
	case "DateNotEquals":
		return date(func(a, b time.Time) bool { return a.Equal(b) }), true, true
	case "DateLessThan":
		return date(func(a, b time.Time) bool { return a.Before(b) }), false, true
	case "DateLessThanEquals":
		return date(func(a, b time.Time) bool { return !a.After(b) }), false, true
	case "DateGreaterThan":
		return date(func(a, b time.Time) bool { return a.After(b) }), false, true
	case "DateGreaterThanEquals":
		return date(func(a, b time.Time) bool { return !a.Before(b) }), false, true
	}
	return nil, false, false
}

// date compares timestamps written as ISO 8601 or as epoch seconds, as IAM accepts both.
func date(cmp func(a, b time.Time) bool) func(have, want string) bool {
	return func(have, want string) bool {
		a, ok1 := parseDate(have)
		b, ok2 := parseDate(want)
		return ok1 && ok2 && cmp(a, b)
	}
}

// ValidDate reports whether s is a date the Date operators understand (ISO 8601 or epoch
// seconds).
func ValidDate(s string) bool {
	_, ok := parseDate(s)
	return ok
}

func parseDate(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05Z0700", "2006-01-02T15:04Z07:00", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	if secs, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(secs, 0), true
	}
	return time.Time{}, false
}

func stringEquals(have, want string) bool { return have == want }

func globMatch(have, want string) bool { return Glob(want, have) }

func numeric(cmp func(a, b float64) bool) func(have, want string) bool {
	return func(have, want string) bool {
		a, err1 := strconv.ParseFloat(have, 64)
		b, err2 := strconv.ParseFloat(want, 64)
		return err1 == nil && err2 == nil && cmp(a, b)
	}
}
