package cloudwatch

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

// Dimension is a metric dimension (also a ListMetrics dimension filter, whose Value may be
// empty).
type Dimension struct {
	Name  string
	Value string
}

type statisticSet struct {
	SampleCount *float64
	Sum         *float64
	Minimum     *float64
	Maximum     *float64
}

type metricDatum struct {
	MetricName        string
	Dimensions        []Dimension
	Timestamp         *time.Time
	Value             *float64
	StatisticValues   *statisticSet
	Values            []float64
	Counts            []float64
	Unit              string
	StorageResolution *int32
}

type putMetricDataInput struct {
	Namespace  string
	MetricData []metricDatum
}

// series is one metric: a namespace, a name and an exact set of dimensions.
type series struct {
	Namespace  string      `json:"namespace"`
	MetricName string      `json:"metricName"`
	Dimensions []Dimension `json:"dimensions,omitempty"` // sorted by name
	LastPut    time.Time   `json:"lastPut"`
	Points     []point     `json:"points"` // ordered by time
}

// point is one PutMetricData datum. Values/Counts hold the distribution when the datum gave
// one (Value or Values); a statistic set has none, so percentiles skip it as AWS does.
type point struct {
	T      time.Time `json:"t"`
	Unit   string    `json:"unit,omitempty"`
	Count  float64   `json:"n"`
	Sum    float64   `json:"sum"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Values []float64 `json:"v,omitempty"`
	Counts []float64 `json:"c,omitempty"`
	NoDist bool      `json:"nodist,omitempty"`
}

func seriesKey(namespace, name string, dims []Dimension) string {
	var b strings.Builder
	b.WriteString(namespace)
	b.WriteByte(0)
	b.WriteString(name)
	for _, d := range dims {
		b.WriteByte(0)
		b.WriteString(d.Name)
		b.WriteByte('=')
		b.WriteString(d.Value)
	}
	return b.String()
}

func sortedDims(dims []Dimension) []Dimension {
	out := slices.Clone(dims)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

var validUnits = map[string]bool{
	"Seconds": true, "Microseconds": true, "Milliseconds": true, "Bytes": true, "Kilobytes": true,
	"Megabytes": true, "Gigabytes": true, "Terabytes": true, "Bits": true, "Kilobits": true,
	"Megabits": true, "Gigabits": true, "Terabits": true, "Percent": true, "Count": true,
	"Bytes/Second": true, "Kilobytes/Second": true, "Megabytes/Second": true, "Gigabytes/Second": true,
	"Terabytes/Second": true, "Bits/Second": true, "Kilobits/Second": true, "Megabits/Second": true,
	"Gigabits/Second": true, "Terabits/Second": true, "Count/Second": true, "None": true,
}

// Limits of PutMetricData, from the CloudWatch API reference.
const (
	maxMetricData     = 1000
	maxDimensions     = 30
	maxValues         = 150
	maxPutBodyBytes   = 1 << 20
	maxPastTimestamp  = 14 * 24 * time.Hour
	maxFutureTimestmp = 2 * time.Hour
)

// valueLimit is 2^360: CloudWatch rejects values of larger magnitude.
var valueLimit = math.Pow(2, 360)

func checkValue(field string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return invalidParameter("The value %v for parameter %s is invalid: special values (NaN, Infinity) are not supported.", v, field)
	}
	if math.Abs(v) > valueLimit {
		return invalidParameter("The value %v for parameter %s is out of the range -2^360 to 2^360.", v, field)
	}
	return nil
}

func checkDimensions(field string, dims []Dimension, needValues bool) error {
	if len(dims) > maxDimensions {
		return invalidParameter("The collection %s must not have a size greater than %d.", field, maxDimensions)
	}
	seen := map[string]bool{}
	for j, d := range dims {
		f := fmt.Sprintf("%s.member.%d", field, j+1)
		if d.Name == "" || len(d.Name) > 255 {
			return invalidParameter("The parameter %s.Name must be between 1 and 255 characters.", f)
		}
		if needValues && (d.Value == "" || len(d.Value) > 1024) {
			return invalidParameter("The parameter %s.Value must be between 1 and 1024 characters.", f)
		}
		if seen[d.Name] {
			return invalidParameter("The collection %s contains the dimension %s more than once.", field, d.Name)
		}
		seen[d.Name] = true
	}
	return nil
}

// validateDatum checks one datum as PutMetricData does and returns it as a point.
func validateDatum(i int, d *metricDatum, now time.Time) (point, error) {
	field := fmt.Sprintf("MetricData.member.%d", i+1)
	if d.MetricName == "" {
		return point{}, missingParameter(field + ".MetricName")
	}
	if len(d.MetricName) > 255 {
		return point{}, invalidParameter("The parameter %s.MetricName must be at most 255 characters.", field)
	}
	if err := checkDimensions(field+".Dimensions", d.Dimensions, true); err != nil {
		return point{}, err
	}
	if d.Unit != "" && !validUnits[d.Unit] {
		return point{}, invalidParameter("The value %s for parameter %s.Unit is not a valid unit.", d.Unit, field)
	}
	if r := d.StorageResolution; r != nil && *r != 1 && *r != 60 {
		return point{}, invalidParameter("The value %d for parameter %s.StorageResolution is invalid: use 1 or 60.", *r, field)
	}
	t := now
	if d.Timestamp != nil {
		t = d.Timestamp.UTC()
		if t.Before(now.Add(-maxPastTimestamp)) {
			return point{}, invalidParameter("The parameter %s.Timestamp must specify a time no more than two weeks in the past.", field)
		}
		if t.After(now.Add(maxFutureTimestmp)) {
			return point{}, invalidParameter("The parameter %s.Timestamp must specify a time no more than two hours in the future.", field)
		}
	}
	given := 0
	for _, present := range []bool{d.Value != nil, d.StatisticValues != nil, d.Values != nil} {
		if present {
			given++
		}
	}
	if given == 0 {
		return point{}, missingParameter(field + ".Value, " + field + ".StatisticValues or " + field + ".Values")
	}
	if given > 1 {
		return point{}, invalidCombination("The parameters %s.Value, %s.StatisticValues and %s.Values are mutually exclusive.", field, field, field)
	}
	p := point{T: t, Unit: d.Unit}
	switch {
	case d.Value != nil:
		if err := checkValue(field+".Value", *d.Value); err != nil {
			return point{}, err
		}
		v := *d.Value
		p.Count, p.Sum, p.Min, p.Max = 1, v, v, v
		p.Values, p.Counts = []float64{v}, []float64{1}
	case d.Values != nil:
		if len(d.Values) == 0 || len(d.Values) > maxValues {
			return point{}, invalidParameter("The collection %s.Values must have between 1 and %d members.", field, maxValues)
		}
		if d.Counts != nil && len(d.Counts) != len(d.Values) {
			return point{}, invalidParameter("The collections %s.Values and %s.Counts must have the same size.", field, field)
		}
		p.Min, p.Max = math.Inf(1), math.Inf(-1)
		for j, v := range d.Values {
			if err := checkValue(fmt.Sprintf("%s.Values.member.%d", field, j+1), v); err != nil {
				return point{}, err
			}
			c := 1.0
			if d.Counts != nil {
				c = d.Counts[j]
				if math.IsNaN(c) || math.IsInf(c, 0) || c < 0 {
					return point{}, invalidParameter("The value %v for parameter %s.Counts.member.%d is invalid.", c, field, j+1)
				}
			}
			p.Values = append(p.Values, v)
			p.Counts = append(p.Counts, c)
			p.Count += c
			p.Sum += v * c
			p.Min, p.Max = math.Min(p.Min, v), math.Max(p.Max, v)
		}
	default:
		sv := d.StatisticValues
		for _, f := range []struct {
			name string
			v    *float64
		}{{"SampleCount", sv.SampleCount}, {"Sum", sv.Sum}, {"Minimum", sv.Minimum}, {"Maximum", sv.Maximum}} {
			if f.v == nil {
				return point{}, missingParameter(field + ".StatisticValues." + f.name)
			}
			if err := checkValue(field+".StatisticValues."+f.name, *f.v); err != nil {
				return point{}, err
			}
		}
		p.Count, p.Sum, p.Min, p.Max = *sv.SampleCount, *sv.Sum, *sv.Minimum, *sv.Maximum
		p.NoDist = true
		if p.Count <= 0 {
			return point{}, invalidParameter("The parameter %s.StatisticValues.SampleCount must be greater than 0.", field)
		}
		if p.Min > p.Max {
			return point{}, invalidParameter("The parameter %s.StatisticValues.Maximum must be greater than or equal to %s.StatisticValues.Minimum.", field, field)
		}
		// The sum of SampleCount values between Minimum and Maximum lies in this range; a
		// small relative tolerance absorbs floating-point rounding in the client.
		lo, hi := p.Min*p.Count, p.Max*p.Count
		tol := 1e-9 * math.Max(1, math.Max(math.Abs(lo), math.Abs(hi)))
		if p.Sum < lo-tol || p.Sum > hi+tol {
			return point{}, invalidParameter("The parameter %s.StatisticValues.Sum must lie between SampleCount*Minimum and SampleCount*Maximum.", field)
		}
	}
	return p, nil
}

func (s *Service) putMetricData(c *call) (any, error) {
	if len(c.req.Body) > maxPutBodyBytes {
		return nil, awsapi.ErrorfStatus(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "Request size %d exceeded %d bytes", len(c.req.Body), maxPutBodyBytes)
	}
	var in putMetricDataInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.Namespace == "" {
		return nil, missingParameter("Namespace")
	}
	if len(in.Namespace) > 255 || strings.HasPrefix(in.Namespace, "AWS/") || strings.Contains(in.Namespace, ":") {
		return nil, invalidParameter("The value %s for parameter Namespace is invalid.", in.Namespace)
	}
	if len(in.MetricData) == 0 {
		return nil, missingParameter("MetricData")
	}
	if len(in.MetricData) > maxMetricData {
		return nil, invalidParameter("The collection MetricData must not have a size greater than %d.", maxMetricData)
	}
	if err := c.authorize("PutMetricData", map[string][]string{"cloudwatch:namespace": {in.Namespace}}); err != nil {
		return nil, err
	}
	now := s.now().UTC()
	points := make([]point, len(in.MetricData))
	for i := range in.MetricData {
		p, err := validateDatum(i, &in.MetricData[i], now)
		if err != nil {
			return nil, err // AWS rejects the whole request when one datum is invalid
		}
		points[i] = p
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, d := range in.MetricData {
		dims := sortedDims(d.Dimensions)
		key := seriesKey(in.Namespace, d.MetricName, dims)
		sr, ok := s.series[key]
		if !ok {
			sr = &series{Namespace: in.Namespace, MetricName: d.MetricName, Dimensions: dims}
			s.series[key] = sr
		}
		sr.add(points[i], now)
	}
	s.metricsChangedLocked()
	return nil, nil
}

// add inserts p in time order and drops what is past retention.
func (sr *series) add(p point, now time.Time) {
	i := sort.Search(len(sr.Points), func(i int) bool { return sr.Points[i].T.After(p.T) })
	sr.Points = slices.Insert(sr.Points, i, p)
	cut := sort.Search(len(sr.Points), func(i int) bool { return !sr.Points[i].T.Before(now.Add(-retention)) })
	if over := len(sr.Points) - maxPoints; over > cut {
		cut = over
	}
	if cut > 0 {
		sr.Points = slices.Delete(sr.Points, 0, cut)
	}
	sr.LastPut = now
}

// bucket aggregates the points of one period.
type bucket struct {
	start                time.Time
	count, sum, min, max float64
	values, counts       []float64
	noDist               bool
	unit                 string
}

// periodStart is the start of the period holding t, periods being aligned to multiples of
// period since the Unix epoch (time.Truncate aligns to the zero time, which differs for
// periods that do not divide a day).
func periodStart(t time.Time, period time.Duration) time.Time {
	n, p := t.UnixNano(), int64(period)
	r := n % p
	if r < 0 {
		r += p
	}
	return time.Unix(0, n-r).UTC()
}

// aggregate groups the series' points in [start, end) into periods aligned to multiples of
// period since the epoch, optionally only those with the given unit.
func (sr *series) aggregate(start, end time.Time, period time.Duration, unit string) []*bucket {
	var out []*bucket
	byStart := map[int64]*bucket{}
	lo := sort.Search(len(sr.Points), func(i int) bool { return !sr.Points[i].T.Before(start) })
	for _, p := range sr.Points[lo:] {
		if !p.T.Before(end) {
			break
		}
		if unit != "" && p.Unit != unit && !(unit == "None" && p.Unit == "") {
			continue
		}
		bs := periodStart(p.T, period)
		b, ok := byStart[bs.UnixNano()]
		if !ok {
			b = &bucket{start: bs, min: math.Inf(1), max: math.Inf(-1), unit: p.Unit}
			byStart[bs.UnixNano()] = b
			out = append(out, b)
		}
		b.count += p.Count
		b.sum += p.Sum
		b.min = math.Min(b.min, p.Min)
		b.max = math.Max(b.max, p.Max)
		if p.NoDist {
			b.noDist = true
		}
		b.values = append(b.values, p.Values...)
		b.counts = append(b.counts, p.Counts...)
	}
	return out
}

var percentilePattern = regexp.MustCompile(`^p(\d{1,2}(\.\d{1,2})?|100)$`)

func validStatistic(stat string) bool {
	switch stat {
	case "SampleCount", "Average", "Sum", "Minimum", "Maximum":
		return true
	}
	return percentilePattern.MatchString(stat)
}

// statistic computes stat for a bucket; ok is false when it cannot (a percentile over data
// sent as statistic sets).
func (b *bucket) statistic(stat string) (float64, bool) {
	switch stat {
	case "SampleCount":
		return b.count, true
	case "Sum":
		return b.sum, true
	case "Minimum":
		return b.min, true
	case "Maximum":
		return b.max, true
	case "Average":
		if b.count == 0 {
			return 0, false
		}
		return b.sum / b.count, true
	}
	pct, err := strconv.ParseFloat(strings.TrimPrefix(stat, "p"), 64)
	if err != nil || b.noDist || len(b.values) == 0 {
		return 0, false
	}
	return percentile(b.values, b.counts, pct), true
}

// percentile is the nearest-rank percentile of weighted values.
func percentile(values, counts []float64, pct float64) float64 {
	idx := make([]int, len(values))
	total := 0.0
	for i := range idx {
		idx[i] = i
		total += counts[i]
	}
	sort.Slice(idx, func(a, b int) bool { return values[idx[a]] < values[idx[b]] })
	rank := pct / 100 * total
	cum := 0.0
	for _, i := range idx {
		cum += counts[i]
		if cum >= rank && counts[i] > 0 {
			return values[i]
		}
	}
	return values[idx[len(idx)-1]]
}

func checkPeriod(field string, period int32) error {
	if period <= 0 {
		return invalidParameter("The parameter %s must be greater than 0.", field)
	}
	if period < 60 && period != 1 && period != 5 && period != 10 && period != 30 {
		return invalidParameter("The parameter %s must be 1, 5, 10, 30, or a multiple of 60.", field)
	}
	if period >= 60 && period%60 != 0 {
		return invalidParameter("The parameter %s must be a multiple of 60.", field)
	}
	return nil
}

type getMetricStatisticsInput struct {
	Namespace          string
	MetricName         string
	Dimensions         []Dimension
	StartTime          *time.Time
	EndTime            *time.Time
	Period             int32
	Statistics         []string
	ExtendedStatistics []string
	Unit               string
}

// Datapoint is a GetMetricStatistics datapoint.
type Datapoint struct {
	Timestamp          time.Time
	SampleCount        *float64
	Average            *float64
	Sum                *float64
	Minimum            *float64
	Maximum            *float64
	Unit               string
	ExtendedStatistics map[string]float64
}

type getMetricStatisticsOutput struct {
	Label      string
	Datapoints []Datapoint
}

// maxDatapoints is GetMetricStatistics' limit of datapoints per call.
const maxDatapoints = 1440

func (s *Service) getMetricStatistics(c *call) (any, error) {
	var in getMetricStatisticsInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	for name, missing := range map[string]bool{"Namespace": in.Namespace == "", "MetricName": in.MetricName == "",
		"StartTime": in.StartTime == nil, "EndTime": in.EndTime == nil, "Period": in.Period == 0} {
		if missing {
			return nil, missingParameter(name)
		}
	}
	if err := checkPeriod("Period", in.Period); err != nil {
		return nil, err
	}
	if !in.StartTime.Before(*in.EndTime) {
		return nil, invalidParameter("The parameter StartTime must be less than the parameter EndTime.")
	}
	if len(in.Statistics) == 0 && len(in.ExtendedStatistics) == 0 {
		return nil, missingParameter("Statistics or ExtendedStatistics")
	}
	if len(in.Statistics) > 5 || len(in.ExtendedStatistics) > 10 {
		return nil, invalidParameter("At most 5 Statistics and 10 ExtendedStatistics may be requested.")
	}
	for _, st := range in.Statistics {
		if st != "SampleCount" && st != "Average" && st != "Sum" && st != "Minimum" && st != "Maximum" {
			return nil, invalidParameter("The value %s for parameter Statistics is not a valid statistic.", st)
		}
	}
	for _, st := range in.ExtendedStatistics {
		if !percentilePattern.MatchString(st) {
			return nil, invalidParameter("The value %s for parameter ExtendedStatistics is not a valid percentile (p0.0-p100).", st)
		}
	}
	if in.Unit != "" && !validUnits[in.Unit] {
		return nil, invalidParameter("The value %s for parameter Unit is not a valid unit.", in.Unit)
	}
	if err := checkDimensions("Dimensions", in.Dimensions, true); err != nil {
		return nil, err
	}
	period := time.Duration(in.Period) * time.Second
	if n := in.EndTime.Sub(*in.StartTime) / period; n > maxDatapoints {
		return nil, invalidCombination("You have requested up to %d datapoints, which exceeds the limit of %d. You may reduce the datapoints requested by increasing Period, or decreasing the time range.", n, maxDatapoints)
	}
	if err := c.authorize("GetMetricStatistics", nil); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := &getMetricStatisticsOutput{Label: in.MetricName, Datapoints: []Datapoint{}}
	sr := s.series[seriesKey(in.Namespace, in.MetricName, sortedDims(in.Dimensions))]
	if sr == nil {
		return out, nil
	}
	for _, b := range sr.aggregate(*in.StartTime, *in.EndTime, period, in.Unit) {
		dp := Datapoint{Timestamp: b.start, Unit: valueOr(b.unit, "None")}
		for _, st := range in.Statistics {
			v, ok := b.statistic(st)
			if !ok {
				continue
			}
			switch st {
			case "SampleCount":
				dp.SampleCount = &v
			case "Average":
				dp.Average = &v
			case "Sum":
				dp.Sum = &v
			case "Minimum":
				dp.Minimum = &v
			case "Maximum":
				dp.Maximum = &v
			}
		}
		for _, st := range in.ExtendedStatistics {
			if v, ok := b.statistic(st); ok {
				if dp.ExtendedStatistics == nil {
					dp.ExtendedStatistics = map[string]float64{}
				}
				dp.ExtendedStatistics[st] = v
			}
		}
		out.Datapoints = append(out.Datapoints, dp)
	}
	return out, nil
}

// Metric names a metric.
type Metric struct {
	Namespace  string
	MetricName string
	Dimensions []Dimension
}

type metricStat struct {
	Metric *Metric
	Period int32
	Stat   string
	Unit   string
}

type metricDataQuery struct {
	Id         string
	MetricStat *metricStat
	Expression string
	Label      string
	ReturnData *bool
	Period     *int32
	AccountId  string
}

type getMetricDataInput struct {
	MetricDataQueries []metricDataQuery
	StartTime         *time.Time
	EndTime           *time.Time
	NextToken         string
	ScanBy            string
	MaxDatapoints     int32
}

type metricDataResult struct {
	Id         string
	Label      string
	Timestamps []time.Time
	Values     []float64
	StatusCode string
}

type getMetricDataOutput struct {
	MetricDataResults []metricDataResult
	Messages          []struct{}
	NextToken         *string
}

// defaultMaxDatapoints is GetMetricData's default page size in datapoints.
const defaultMaxDatapoints = 100800

var queryIDPattern = regexp.MustCompile(`^[a-z][a-zA-Z0-9_]*$`)

func validateMetricStat(field string, ms *metricStat) error {
	if ms.Metric == nil || ms.Metric.MetricName == "" || ms.Metric.Namespace == "" {
		return missingParameter(field + ".Metric (with Namespace and MetricName)")
	}
	if err := checkPeriod(field+".Period", ms.Period); err != nil {
		return err
	}
	if !validStatistic(ms.Stat) {
		return invalidParameter("The value %s for parameter %s.Stat is not supported by the local cloud (use SampleCount, Average, Sum, Minimum, Maximum or pNN).", ms.Stat, field)
	}
	if ms.Unit != "" && !validUnits[ms.Unit] {
		return invalidParameter("The value %s for parameter %s.Unit is not a valid unit.", ms.Unit, field)
	}
	return checkDimensions(field+".Metric.Dimensions", ms.Metric.Dimensions, true)
}

func (s *Service) getMetricData(c *call) (any, error) {
	var in getMetricDataInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.StartTime == nil || in.EndTime == nil {
		return nil, missingParameter("StartTime and EndTime")
	}
	if !in.StartTime.Before(*in.EndTime) {
		return nil, invalidParameter("The parameter StartTime must be less than the parameter EndTime.")
	}
	if len(in.MetricDataQueries) == 0 || len(in.MetricDataQueries) > 500 {
		return nil, invalidParameter("The collection MetricDataQueries must have between 1 and 500 members.")
	}
	if in.ScanBy != "" && in.ScanBy != "TimestampDescending" && in.ScanBy != "TimestampAscending" {
		return nil, invalidParameter("The value %s for parameter ScanBy is invalid.", in.ScanBy)
	}
	if in.MaxDatapoints == 0 {
		in.MaxDatapoints = defaultMaxDatapoints
	}
	if in.MaxDatapoints < 1 {
		return nil, invalidParameter("The parameter MaxDatapoints must be greater than 0.")
	}
	// The token is the number of datapoints already returned, in result order.
	skip, err := pageOffset(in.NextToken)
	if err != nil {
		return nil, err
	}
	exprs, err := validateQueries("MetricDataQueries", in.MetricDataQueries)
	if err != nil {
		return nil, err
	}
	if err := c.authorize("GetMetricData", nil); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	series, err := s.evaluateQueries(in.MetricDataQueries, exprs, *in.StartTime, *in.EndTime)
	if err != nil {
		return nil, err
	}
	out := &getMetricDataOutput{MetricDataResults: []metricDataResult{}, Messages: []struct{}{}}
	for _, q := range in.MetricDataQueries {
		if q.ReturnData != nil && !*q.ReturnData {
			continue
		}
		label := q.Label
		if label == "" && q.MetricStat != nil {
			label = q.MetricStat.Metric.MetricName
		}
		res := metricDataResult{Id: q.Id, Label: valueOr(label, q.Id), Timestamps: []time.Time{}, Values: []float64{}, StatusCode: "Complete"}
		ts := series[q.Id]
		for _, t := range sortedTimes(ts) {
			res.Timestamps = append(res.Timestamps, time.Unix(t, 0).UTC())
			res.Values = append(res.Values, ts[t])
		}
		if in.ScanBy != "TimestampAscending" {
			slices.Reverse(res.Timestamps)
			slices.Reverse(res.Values)
		}
		out.MetricDataResults = append(out.MetricDataResults, res)
	}
	paginateResults(out, skip, int(in.MaxDatapoints))
	return out, nil
}

// validateQueries checks metric data queries (of GetMetricData or of an alarm) and returns
// their parsed expressions by id.
func validateQueries(name string, queries []metricDataQuery) (map[string]mathExpr, error) {
	ids := map[string]bool{}
	exprs := map[string]mathExpr{}
	for i, q := range queries {
		field := fmt.Sprintf("%s.member.%d", name, i+1)
		if !queryIDPattern.MatchString(q.Id) {
			return nil, invalidParameter("The value %s for parameter %s.Id is invalid: it must start with a lower-case letter and contain only letters, digits and underscores.", q.Id, field)
		}
		if ids[q.Id] {
			return nil, invalidParameter("The Id %s is used more than once in %s.", q.Id, name)
		}
		ids[q.Id] = true
		switch {
		case q.Expression != "" && q.MetricStat != nil:
			return nil, invalidCombination("%s: specify MetricStat or Expression, not both.", field)
		case q.Expression != "":
			e, _, err := parseMath(q.Expression)
			if err != nil {
				return nil, invalidParameter("Error in expression %s: %v", q.Id, err)
			}
			exprs[q.Id] = e
			continue
		case q.MetricStat == nil:
			return nil, missingParameter(field + ".MetricStat or " + field + ".Expression")
		}
		if err := validateMetricStat(field+".MetricStat", q.MetricStat); err != nil {
			return nil, err
		}
	}
	for _, q := range queries {
		if q.Expression == "" {
			continue
		}
		_, refs, _ := parseMath(q.Expression)
		for _, ref := range refs {
			if !ids[ref] {
				return nil, invalidParameter("Error in expression %s: Unrecognized metric %s.", q.Id, ref)
			}
		}
	}
	return exprs, nil
}

// evaluateQueries computes every query's time series: MetricStat queries from the stored
// data, expressions from the queries they name (each once; a cycle is an error).
func (s *Service) evaluateQueries(queries []metricDataQuery, exprs map[string]mathExpr, start, end time.Time) (map[string]timeSeries, error) {
	out := map[string]timeSeries{}
	var statIDs []string
	for _, q := range queries {
		if q.MetricStat == nil {
			continue
		}
		statIDs = append(statIDs, q.Id)
		ms := q.MetricStat
		ts := timeSeries{}
		if sr := s.series[seriesKey(ms.Metric.Namespace, ms.Metric.MetricName, sortedDims(ms.Metric.Dimensions))]; sr != nil {
			for _, b := range sr.aggregate(start, end, time.Duration(ms.Period)*time.Second, ms.Unit) {
				if v, ok := b.statistic(ms.Stat); ok {
					ts[b.start.Unix()] = v
				}
			}
		}
		out[q.Id] = ts
	}
	visiting := map[string]bool{}
	var resolve func(id string) (timeSeries, error)
	env := &mathEnv{
		metrics: func(prefix string) ([]timeSeries, error) {
			var all []timeSeries
			for _, id := range statIDs {
				if strings.HasPrefix(id, prefix) {
					all = append(all, out[id])
				}
			}
			return all, nil
		},
	}
	resolve = func(id string) (timeSeries, error) {
		if ts, ok := out[id]; ok {
			return ts, nil
		}
		e, ok := exprs[id]
		if !ok {
			return nil, invalidParameter("Unrecognized metric %s.", id)
		}
		if visiting[id] {
			return nil, invalidParameter("Error in expression %s: it refers to itself through other expressions.", id)
		}
		visiting[id] = true
		defer delete(visiting, id)
		v, err := e.eval(env)
		if err != nil {
			var apiErr *awsapi.Error
			if errors.As(err, &apiErr) {
				return nil, err
			}
			return nil, invalidParameter("Error in expression %s: %v", id, err)
		}
		if v.isNum || v.array {
			return nil, invalidParameter("Error in expression %s: it must return a single time series.", id)
		}
		out[id] = v.series[0]
		return v.series[0], nil
	}
	env.byID = resolve
	for _, q := range queries {
		if q.Expression != "" {
			if _, err := resolve(q.Id); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// paginateResults drops the skip datapoints returned by earlier pages and keeps at most limit
// more; a result cut short is PartialData and the output gets the token of the next page.
func paginateResults(out *getMetricDataOutput, skip, limit int) {
	offset, returned := skip, 0
	more := false
	for i := range out.MetricDataResults {
		r := &out.MetricDataResults[i]
		drop := min(skip, len(r.Values))
		skip -= drop
		r.Timestamps, r.Values = r.Timestamps[drop:], r.Values[drop:]
		keep := min(limit-returned, len(r.Values))
		if keep < len(r.Values) {
			r.Timestamps, r.Values = r.Timestamps[:keep], r.Values[:keep]
			r.StatusCode = "PartialData"
			more = true
		}
		returned += keep
	}
	if more {
		next := strconv.Itoa(offset + returned)
		out.NextToken = &next
	}
}

type listMetricsInput struct {
	Namespace      string
	MetricName     string
	Dimensions     []Dimension
	RecentlyActive string
	NextToken      string
}

type listMetricsOutput struct {
	Metrics   []Metric
	NextToken *string
}

const listMetricsPage = 500

func (s *Service) listMetrics(c *call) (any, error) {
	var in listMetricsInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.RecentlyActive != "" && in.RecentlyActive != "PT3H" {
		return nil, invalidParameter("The value %s for parameter RecentlyActive is invalid: only PT3H is allowed.", in.RecentlyActive)
	}
	if err := checkDimensions("Dimensions", in.Dimensions, false); err != nil {
		return nil, err
	}
	start, err := pageOffset(in.NextToken)
	if err != nil {
		return nil, err
	}
	if err := c.authorize("ListMetrics", nil); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var matched []Metric
	for _, key := range sortedKeys(s.series) {
		sr := s.series[key]
		if in.Namespace != "" && sr.Namespace != in.Namespace || in.MetricName != "" && sr.MetricName != in.MetricName {
			continue
		}
		if in.RecentlyActive == "PT3H" && sr.LastPut.Before(now.Add(-3*time.Hour)) {
			continue
		}
		if !matchesDimensionFilter(sr.Dimensions, in.Dimensions) {
			continue
		}
		matched = append(matched, Metric{Namespace: sr.Namespace, MetricName: sr.MetricName, Dimensions: append([]Dimension{}, sr.Dimensions...)})
	}
	out := &listMetricsOutput{Metrics: []Metric{}}
	var page []Metric
	page, out.NextToken = pageOf(matched, start, listMetricsPage)
	out.Metrics = append(out.Metrics, page...)
	return out, nil
}

// matchesDimensionFilter reports whether a metric has every filter dimension (with the
// filter's value, when it gives one).
func matchesDimensionFilter(dims, filter []Dimension) bool {
	for _, f := range filter {
		if !slices.ContainsFunc(dims, func(d Dimension) bool { return d.Name == f.Name && (f.Value == "" || d.Value == f.Value) }) {
			return false
		}
	}
	return true
}

func valueOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
