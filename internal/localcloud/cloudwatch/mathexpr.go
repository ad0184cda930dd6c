package cloudwatch

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// A subset of CloudWatch metric math for GetMetricData expressions: numbers, query ids,
// + - * / and parentheses, unary minus, the functions SUM, AVG, MIN, MAX and ABS, and
// METRICS() (every MetricStat query of the request, optionally filtered by an id prefix:
// METRICS("m")). As in CloudWatch, SUM/AVG/MIN/MAX of an array of time series ([m1, m2] or
// METRICS()) is a time series, and of a single time series is a single value; arithmetic
// between time series pairs datapoints by timestamp.

// mathValue is what an expression evaluates to: one time series, an array of them, or a
// scalar.
type mathValue struct {
	series []timeSeries // one element for a single time series
	array  bool         // an array of time series
	scalar float64
	isNum  bool
}

// timeSeries maps period start (Unix seconds) to a value.
type timeSeries map[int64]float64

type mathExpr interface {
	eval(env *mathEnv) (mathValue, error)
}

// mathEnv resolves query ids while evaluating.
type mathEnv struct {
	byID    func(id string) (timeSeries, error)
	metrics func(prefix string) ([]timeSeries, error)
}

type numberExpr float64

func (n numberExpr) eval(*mathEnv) (mathValue, error) {
	return mathValue{scalar: float64(n), isNum: true}, nil
}

type idExpr string

func (id idExpr) eval(env *mathEnv) (mathValue, error) {
	ts, err := env.byID(string(id))
	if err != nil {
		return mathValue{}, err
	}
	return mathValue{series: []timeSeries{ts}}, nil
}

type arrayExpr []mathExpr

func (a arrayExpr) eval(env *mathEnv) (mathValue, error) {
	out := mathValue{array: true}
	for _, e := range a {
		v, err := e.eval(env)
		if err != nil {
			return mathValue{}, err
		}
		if v.isNum {
			return mathValue{}, fmt.Errorf("an array may hold only time series")
		}
		out.series = append(out.series, v.series...)
	}
	return out, nil
}

type unaryMinusExpr struct{ x mathExpr }

func (u unaryMinusExpr) eval(env *mathEnv) (mathValue, error) {
	return binaryExpr{op: '*', l: numberExpr(-1), r: u.x}.eval(env)
}

type binaryExpr struct {
	op   byte
	l, r mathExpr
}

func applyOp(op byte, a, b float64) float64 {
	switch op {
	case '+':
		return a + b
	case '-':
		return a - b
	case '*':
		return a * b
	default:
		return a / b
	}
}

func (b binaryExpr) eval(env *mathEnv) (mathValue, error) {
	l, err := b.l.eval(env)
	if err != nil {
		return mathValue{}, err
	}
	r, err := b.r.eval(env)
	if err != nil {
		return mathValue{}, err
	}
	if l.array || r.array {
		return mathValue{}, fmt.Errorf("arithmetic on an array of time series is not supported by the local cloud")
	}
	switch {
	case l.isNum && r.isNum:
		return mathValue{scalar: applyOp(b.op, l.scalar, r.scalar), isNum: true}, nil
	case l.isNum:
		out := timeSeries{}
		for t, v := range r.series[0] {
			out[t] = applyOp(b.op, l.scalar, v)
		}
		return mathValue{series: []timeSeries{out}}, nil
	case r.isNum:
		out := timeSeries{}
		for t, v := range l.series[0] {
			out[t] = applyOp(b.op, v, r.scalar)
		}
		return mathValue{series: []timeSeries{out}}, nil
	}
	out := timeSeries{}
	for t, v := range l.series[0] {
		if w, ok := r.series[0][t]; ok {
			out[t] = applyOp(b.op, v, w)
		}
	}
	return mathValue{series: []timeSeries{out}}, nil
}

type callExpr struct {
	name string
	args []mathExpr
}

func (c callExpr) eval(env *mathEnv) (mathValue, error) {
	if c.name == "METRICS" {
		prefix := ""
		if len(c.args) > 1 {
			return mathValue{}, fmt.Errorf("METRICS takes at most one argument")
		}
		if len(c.args) == 1 {
			s, ok := c.args[0].(stringExpr)
			if !ok {
				return mathValue{}, fmt.Errorf("METRICS takes a string argument")
			}
			prefix = string(s)
		}
		series, err := env.metrics(prefix)
		if err != nil {
			return mathValue{}, err
		}
		return mathValue{series: series, array: true}, nil
	}
	if len(c.args) != 1 {
		return mathValue{}, fmt.Errorf("%s takes one argument", c.name)
	}
	arg, err := c.args[0].eval(env)
	if err != nil {
		return mathValue{}, err
	}
	if c.name == "ABS" {
		if arg.isNum {
			return mathValue{scalar: math.Abs(arg.scalar), isNum: true}, nil
		}
		if arg.array {
			return mathValue{}, fmt.Errorf("ABS of an array of time series is not supported by the local cloud")
		}
		out := timeSeries{}
		for t, v := range arg.series[0] {
			out[t] = math.Abs(v)
		}
		return mathValue{series: []timeSeries{out}}, nil
	}
	reduce, ok := reducers[c.name]
	if !ok {
		return mathValue{}, fmt.Errorf("the function %s is not supported by the local cloud (SUM, AVG, MIN, MAX, ABS and METRICS are)", c.name)
	}
	if arg.isNum {
		return arg, nil
	}
	if !arg.array {
		// Of a single time series: one value over all its datapoints.
		var vals []float64
		for _, v := range arg.series[0] {
			vals = append(vals, v)
		}
		if len(vals) == 0 {
			return mathValue{series: []timeSeries{{}}}, nil
		}
		return mathValue{scalar: reduce(vals), isNum: true}, nil
	}
	// Of an array: a time series of the function across the array at each timestamp.
	byTime := map[int64][]float64{}
	for _, ts := range arg.series {
		for t, v := range ts {
			byTime[t] = append(byTime[t], v)
		}
	}
	out := timeSeries{}
	for t, vals := range byTime {
		out[t] = reduce(vals)
	}
	return mathValue{series: []timeSeries{out}}, nil
}

var reducers = map[string]func([]float64) float64{
	"SUM": func(v []float64) float64 {
		s := 0.0
		for _, x := range v {
			s += x
		}
		return s
	},
	"AVG": func(v []float64) float64 {
		s := 0.0
		for _, x := range v {
			s += x
		}
		return s / float64(len(v))
	},
	"MIN": func(v []float64) float64 {
		m := math.Inf(1)
		for _, x := range v {
			m = math.Min(m, x)
		}
		return m
	},
	"MAX": func(v []float64) float64 {
		m := math.Inf(-1)
		for _, x := range v {
			m = math.Max(m, x)
		}
		return m
	},
}

type stringExpr string

func (s stringExpr) eval(*mathEnv) (mathValue, error) {
	return mathValue{}, fmt.Errorf("a string (%q) is only allowed as the argument of METRICS", string(s))
}

// maxExpressionLength is CloudWatch's limit on an expression's length; it also bounds the
// depth of the trees that evaluation walks recursively.
const maxExpressionLength = 2048

// parseMath parses a metric math expression and returns the query ids it references.
func parseMath(src string) (mathExpr, []string, error) {
	if len(src) > maxExpressionLength {
		return nil, nil, fmt.Errorf("the expression is longer than %d characters", maxExpressionLength)
	}
	p := &mathParser{src: src}
	e, err := p.expr()
	if err != nil {
		return nil, nil, err
	}
	p.space()
	if p.pos < len(p.src) {
		return nil, nil, fmt.Errorf("unexpected %q at position %d", p.src[p.pos:], p.pos+1)
	}
	return e, p.ids, nil
}

type mathParser struct {
	src   string
	pos   int
	depth int
	ids   []string
}

// maxMathDepth bounds nesting, so a hostile expression cannot exhaust the stack.
const maxMathDepth = 100

func (p *mathParser) space() {
	for p.pos < len(p.src) && unicode.IsSpace(rune(p.src[p.pos])) {
		p.pos++
	}
}

func (p *mathParser) peek() byte {
	p.space()
	if p.pos < len(p.src) {
		return p.src[p.pos]
	}
	return 0
}

func (p *mathParser) expr() (mathExpr, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxMathDepth {
		return nil, fmt.Errorf("expression nested too deeply")
	}
	l, err := p.term()
	if err != nil {
		return nil, err
	}
	for c := p.peek(); c == '+' || c == '-'; c = p.peek() {
		p.pos++
		r, err := p.term()
		if err != nil {
			return nil, err
		}
		l = binaryExpr{op: c, l: l, r: r}
	}
	return l, nil
}

func (p *mathParser) term() (mathExpr, error) {
	l, err := p.factor()
	if err != nil {
		return nil, err
	}
	for c := p.peek(); c == '*' || c == '/'; c = p.peek() {
		p.pos++
		r, err := p.factor()
		if err != nil {
			return nil, err
		}
		l = binaryExpr{op: c, l: l, r: r}
	}
	return l, nil
}

func (p *mathParser) factor() (mathExpr, error) {
	switch c := p.peek(); {
	case c == 0:
		return nil, fmt.Errorf("unexpected end of expression")
	case c == '-':
		p.pos++
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > maxMathDepth {
			return nil, fmt.Errorf("expression nested too deeply")
		}
		x, err := p.factor()
		if err != nil {
			return nil, err
		}
		return unaryMinusExpr{x}, nil
	case c == '(':
		p.pos++
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		if p.peek() != ')' {
			return nil, fmt.Errorf("missing ) at position %d", p.pos+1)
		}
		p.pos++
		return e, nil
	case c == '[':
		p.pos++
		var items arrayExpr
		for p.peek() != ']' {
			e, err := p.expr()
			if err != nil {
				return nil, err
			}
			items = append(items, e)
			if p.peek() == ',' {
				p.pos++
			} else if p.peek() != ']' {
				return nil, fmt.Errorf("expected , or ] at position %d", p.pos+1)
			}
		}
		p.pos++
		return items, nil
	case c == '"' || c == '\'':
		end := strings.IndexByte(p.src[p.pos+1:], c)
		if end < 0 {
			return nil, fmt.Errorf("unterminated string at position %d", p.pos+1)
		}
		s := p.src[p.pos+1 : p.pos+1+end]
		p.pos += end + 2
		return stringExpr(s), nil
	case c >= '0' && c <= '9' || c == '.':
		start := p.pos
		for p.pos < len(p.src) && (p.src[p.pos] >= '0' && p.src[p.pos] <= '9' || p.src[p.pos] == '.' || p.src[p.pos] == 'e' || p.src[p.pos] == 'E') {
			p.pos++
		}
		f, err := strconv.ParseFloat(p.src[start:p.pos], 64)
		if err != nil {
			return nil, fmt.Errorf("invalid number %q", p.src[start:p.pos])
		}
		return numberExpr(f), nil
	case unicode.IsLetter(rune(c)) || c == '_':
		start := p.pos
		for p.pos < len(p.src) && (unicode.IsLetter(rune(p.src[p.pos])) || unicode.IsDigit(rune(p.src[p.pos])) || p.src[p.pos] == '_') {
			p.pos++
		}
		name := p.src[start:p.pos]
		if p.peek() != '(' {
			p.ids = append(p.ids, name)
			return idExpr(name), nil
		}
		p.pos++
		call := callExpr{name: strings.ToUpper(name)}
		for p.peek() != ')' {
			e, err := p.expr()
			if err != nil {
				return nil, err
			}
			call.args = append(call.args, e)
			if p.peek() == ',' {
				p.pos++
			} else if p.peek() != ')' {
				return nil, fmt.Errorf("expected , or ) at position %d", p.pos+1)
			}
		}
		p.pos++
		return call, nil
	default:
		return nil, fmt.Errorf("unexpected %q at position %d", string(c), p.pos+1)
	}
}

// sortedTimes returns a series' timestamps in ascending order.
func sortedTimes(ts timeSeries) []int64 {
	out := make([]int64, 0, len(ts))
	for t := range ts {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
