package cloudwatch

import (
	"net/url"
	"reflect"
	"testing"

	"github.com/aws/smithy-go/encoding/cbor"
)

// FuzzDecodeInputs feeds arbitrary awsQuery forms and CBOR bodies through the generic decoder
// into every input type: decoding must fail cleanly or succeed, never panic; and a form that
// decodes must decode the same way twice (the tree has no order dependence).
func FuzzDecodeInputs(f *testing.F) {
	f.Add("Namespace=N&MetricData.member.1.MetricName=m&MetricData.member.1.Value=1&MetricData.member.1.Dimensions.member.1.Name=a&MetricData.member.1.Dimensions.member.1.Value=b", []byte{0xa1, 0x61, 0x61, 0x01})
	f.Add("MetricData.member.1=x&MetricData.member.1.Value=2&MetricData.member.x.Value=3", []byte{0xbf, 0x69, 'N', 'a', 'm', 'e', 's', 'p', 'a', 'c', 'e', 0x61, 'N', 0xff})
	f.Add("StartTime=2026-01-01T00:00:00Z&MetricDataQueries.member.2.Id=a&MetricDataQueries.member.1.MetricStat.Period=60", []byte{0xc1, 0xfb, 0x41, 0xd9, 0, 0, 0, 0, 0, 0})
	inputs := []func() any{
		func() any { return &putMetricDataInput{} },
		func() any { return &getMetricDataInput{} },
		func() any { return &getMetricStatisticsInput{} },
		func() any { return &putMetricAlarmInput{} },
		func() any { return &listMetricsInput{} },
	}
	f.Fuzz(func(t *testing.T, form string, body []byte) {
		if values, err := url.ParseQuery(form); err == nil {
			if tree, err := queryTree(values); err == nil {
				for _, mk := range inputs {
					a, b := mk(), mk()
					errA := assign(reflect.ValueOf(a).Elem(), tree, "")
					again, _ := queryTree(values)
					errB := assign(reflect.ValueOf(b).Elem(), again, "")
					if (errA == nil) != (errB == nil) || (errA == nil && !reflect.DeepEqual(a, b)) {
						t.Fatalf("decoding %q twice differs: %v / %v", form, errA, errB)
					}
				}
			}
		}
		if v, err := cbor.Decode(body); err == nil {
			if tree, err := cborTree(v); err == nil {
				for _, mk := range inputs {
					_ = assign(reflect.ValueOf(mk()).Elem(), tree, "")
				}
			}
		}
	})
}
