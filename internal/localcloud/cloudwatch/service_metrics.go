package cloudwatch

import "time"

// PutServiceMetric records one datum of a metric AWS itself publishes
// (AWS/EC2, AWS/EBS ...): the local cloud's services call it for their own
// resources, as EC2 and EBS publish theirs. PutMetricData refuses AWS/
// namespaces to clients, as CloudWatch does; this is the service's own
// path, so nothing here is authorized or checked against that rule.
func (s *Service) PutServiceMetric(namespace, name string, dims []Dimension, value float64, unit string, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	sd := sortedDims(dims)
	key := seriesKey(namespace, name, sd)
	sr, ok := s.series[key]
	if !ok {
		sr = &series{Namespace: namespace, MetricName: name, Dimensions: sd}
		s.series[key] = sr
	}
	sr.add(point{T: t.UTC(), Unit: unit, Count: 1, Sum: value, Min: value, Max: value, Values: []float64{value}, Counts: []float64{1}}, s.now().UTC())
	s.metricsChangedLocked()
}
