// Package cwquery is the few CloudWatch calls the provider makes for a
// cluster's alarms and dashboard (PutMetricAlarm, DescribeAlarms,
// DeleteAlarms, PutDashboard, DeleteDashboards), spoken in CloudWatch's
// awsQuery protocol. The AWS SDK's CloudWatch client speaks only
// smithy-rpc-v2-cbor now, which CloudWatch and the local cloud serve but
// moto (LocalStack's engine) and older emulators do not; every CloudWatch
// endpoint serves awsQuery, the protocol of the aws CLI. Requests are signed
// with the SDK's SigV4 signer and the SDK client's own credentials, region,
// endpoint and HTTP client, so the provider's configuration applies as to
// every other service.
package cwquery

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// Client calls CloudWatch in awsQuery.
type Client struct {
	endpoint string
	region   string
	creds    aws.CredentialsProvider
	http     aws.HTTPClient
	signer   *v4.Signer
	// attempts bounds the tries of a throttled or failed (5xx) call.
	attempts int
}

// New takes the endpoint, region, credentials and HTTP client of an SDK
// CloudWatch client (endpoints {} block, AWS_ENDPOINT_URL_CLOUDWATCH and
// AWS_ENDPOINT_URL included); without an endpoint, AWS's regional one.
func New(sdk *cloudwatch.Client) *Client {
	o := sdk.Options()
	endpoint := aws.ToString(o.BaseEndpoint)
	if endpoint == "" {
		endpoint = "https://monitoring." + o.Region + ".amazonaws.com"
		if strings.HasPrefix(o.Region, "cn-") {
			endpoint += ".cn"
		}
	}
	httpClient := o.HTTPClient
	if httpClient == nil {
		httpClient = http.DefaultClient
	}
	return &Client{endpoint: endpoint, region: o.Region, creds: o.Credentials, http: httpClient, signer: v4.NewSigner(), attempts: 4}
}

// Error is an error CloudWatch answered with.
type Error struct {
	Code, Message string
	Status        int
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s (HTTP %d)", e.Code, e.Message, e.Status) }

// Code returns err's CloudWatch error code, "" when it has none.
func Code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// call sends one action and decodes its <ActionResult> into out (nil: no result).
func (c *Client) call(ctx context.Context, action string, params url.Values, out any) error {
	params.Set("Action", action)
	params.Set("Version", "2010-08-01")
	body := params.Encode()
	var err error
	for attempt := 1; ; attempt++ {
		err = c.once(ctx, action, body, out)
		var e *Error
		retry := errors.As(err, &e) && (e.Status >= 500 || e.Code == "Throttling" || e.Code == "ThrottlingException")
		if !retry || attempt >= c.attempts {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt*attempt) * 200 * time.Millisecond):
		}
	}
}

func (c *Client) once(ctx context.Context, action, body string, out any) error {
	if c.creds == nil {
		return fmt.Errorf("CloudWatch %s: no AWS credentials", action)
	}
	creds, err := c.creds.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("CloudWatch %s: getting AWS credentials: %w", action, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.endpoint, "/")+"/", strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("CloudWatch %s: %w", action, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	sum := sha256.Sum256([]byte(body))
	if err := c.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "monitoring", c.region, time.Now().UTC()); err != nil {
		return fmt.Errorf("CloudWatch %s: signing: %w", action, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("CloudWatch %s: %w", action, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("CloudWatch %s: reading the answer: %w", action, err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string } `xml:"Error"`
		}
		if xml.Unmarshal(data, &e) != nil || e.Error.Code == "" {
			return fmt.Errorf("CloudWatch %s: HTTP %d: %.200s", action, resp.StatusCode, data)
		}
		return fmt.Errorf("CloudWatch %s: %w", action, &Error{Code: e.Error.Code, Message: e.Error.Message, Status: resp.StatusCode})
	}
	if out == nil {
		return nil
	}
	dec := xml.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("CloudWatch %s: no %sResult in the answer: %w", action, action, err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == action+"Result" {
			if err := dec.DecodeElement(out, &se); err != nil {
				return fmt.Errorf("CloudWatch %s: decoding the answer: %w", action, err)
			}
			return nil
		}
	}
}

// list sets prefix.member.1, .2, ... to values.
func list(p url.Values, prefix string, values []string) {
	for i, v := range values {
		p.Set(fmt.Sprintf("%s.member.%d", prefix, i+1), v)
	}
}

func dimensions(p url.Values, prefix string, dims []types.Dimension) {
	for i, d := range dims {
		p.Set(fmt.Sprintf("%s.member.%d.Name", prefix, i+1), aws.ToString(d.Name))
		p.Set(fmt.Sprintf("%s.member.%d.Value", prefix, i+1), aws.ToString(d.Value))
	}
}

func setString(p url.Values, key string, v *string) {
	if v != nil {
		p.Set(key, *v)
	}
}

func setInt(p url.Values, key string, v *int32) {
	if v != nil {
		p.Set(key, strconv.Itoa(int(*v)))
	}
}

// PutMetricAlarm creates or replaces an alarm.
func (c *Client) PutMetricAlarm(ctx context.Context, in *cloudwatch.PutMetricAlarmInput) error {
	p := url.Values{}
	setString(p, "AlarmName", in.AlarmName)
	setString(p, "AlarmDescription", in.AlarmDescription)
	if in.ActionsEnabled != nil {
		p.Set("ActionsEnabled", strconv.FormatBool(*in.ActionsEnabled))
	}
	list(p, "AlarmActions", in.AlarmActions)
	list(p, "OKActions", in.OKActions)
	list(p, "InsufficientDataActions", in.InsufficientDataActions)
	setString(p, "MetricName", in.MetricName)
	setString(p, "Namespace", in.Namespace)
	if in.Statistic != "" {
		p.Set("Statistic", string(in.Statistic))
	}
	dimensions(p, "Dimensions", in.Dimensions)
	setInt(p, "Period", in.Period)
	setInt(p, "EvaluationPeriods", in.EvaluationPeriods)
	setInt(p, "DatapointsToAlarm", in.DatapointsToAlarm)
	if in.Threshold != nil {
		p.Set("Threshold", strconv.FormatFloat(*in.Threshold, 'g', -1, 64))
	}
	if in.ComparisonOperator != "" {
		p.Set("ComparisonOperator", string(in.ComparisonOperator))
	}
	setString(p, "TreatMissingData", in.TreatMissingData)
	for i, q := range in.Metrics {
		k := fmt.Sprintf("Metrics.member.%d.", i+1)
		setString(p, k+"Id", q.Id)
		setString(p, k+"Expression", q.Expression)
		setString(p, k+"Label", q.Label)
		if q.ReturnData != nil {
			p.Set(k+"ReturnData", strconv.FormatBool(*q.ReturnData))
		}
		if ms := q.MetricStat; ms != nil {
			setString(p, k+"MetricStat.Metric.Namespace", ms.Metric.Namespace)
			setString(p, k+"MetricStat.Metric.MetricName", ms.Metric.MetricName)
			dimensions(p, k+"MetricStat.Metric.Dimensions", ms.Metric.Dimensions)
			setInt(p, k+"MetricStat.Period", ms.Period)
			setString(p, k+"MetricStat.Stat", ms.Stat)
		}
	}
	for i, t := range in.Tags {
		p.Set(fmt.Sprintf("Tags.member.%d.Key", i+1), aws.ToString(t.Key))
		p.Set(fmt.Sprintf("Tags.member.%d.Value", i+1), aws.ToString(t.Value))
	}
	return c.call(ctx, "PutMetricAlarm", p, nil)
}

// AlarmNames lists the metric alarms whose names start with prefix.
func (c *Client) AlarmNames(ctx context.Context, prefix string) ([]string, error) {
	alarms, err := c.Alarms(ctx, prefix)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(alarms))
	for i, a := range alarms {
		names[i] = a.Name
	}
	return names, nil
}

// Alarm is what DescribeAlarms says of a metric alarm, as far as the
// provider reads it back.
type Alarm struct {
	Name         string
	Threshold    float64
	AlarmActions []string
	// Dimensions are those of a single-metric alarm (none for metric math).
	Dimensions map[string]string
}

// Alarms lists the metric alarms whose names start with prefix.
func (c *Client) Alarms(ctx context.Context, prefix string) ([]Alarm, error) {
	var alarms []Alarm
	next := ""
	for {
		p := url.Values{}
		p.Set("AlarmNamePrefix", prefix)
		list(p, "AlarmTypes", []string{"MetricAlarm"})
		if next != "" {
			p.Set("NextToken", next)
		}
		var out struct {
			MetricAlarms []struct {
				AlarmName    string   `xml:"AlarmName"`
				Threshold    float64  `xml:"Threshold"`
				AlarmActions []string `xml:"AlarmActions>member"`
				Dimensions   []struct {
					Name  string `xml:"Name"`
					Value string `xml:"Value"`
				} `xml:"Dimensions>member"`
			} `xml:"MetricAlarms>member"`
			NextToken string `xml:"NextToken"`
		}
		if err := c.call(ctx, "DescribeAlarms", p, &out); err != nil {
			return nil, err
		}
		for _, a := range out.MetricAlarms {
			al := Alarm{Name: a.AlarmName, Threshold: a.Threshold, AlarmActions: a.AlarmActions}
			for _, d := range a.Dimensions {
				if al.Dimensions == nil {
					al.Dimensions = map[string]string{}
				}
				al.Dimensions[d.Name] = d.Value
			}
			alarms = append(alarms, al)
		}
		if out.NextToken == "" || out.NextToken == next {
			return alarms, nil
		}
		next = out.NextToken
	}
}

// DeleteAlarms deletes up to 100 alarms.
func (c *Client) DeleteAlarms(ctx context.Context, names []string) error {
	p := url.Values{}
	list(p, "AlarmNames", names)
	return c.call(ctx, "DeleteAlarms", p, nil)
}

// PutDashboard creates or replaces a dashboard.
func (c *Client) PutDashboard(ctx context.Context, name, body string) error {
	p := url.Values{}
	p.Set("DashboardName", name)
	p.Set("DashboardBody", body)
	return c.call(ctx, "PutDashboard", p, nil)
}

// DashboardNames lists the dashboards whose names start with prefix.
func (c *Client) DashboardNames(ctx context.Context, prefix string) ([]string, error) {
	var names []string
	next := ""
	for {
		p := url.Values{}
		p.Set("DashboardNamePrefix", prefix)
		if next != "" {
			p.Set("NextToken", next)
		}
		var out struct {
			Entries []struct {
				DashboardName string `xml:"DashboardName"`
			} `xml:"DashboardEntries>member"`
			NextToken string `xml:"NextToken"`
		}
		if err := c.call(ctx, "ListDashboards", p, &out); err != nil {
			return nil, err
		}
		for _, e := range out.Entries {
			names = append(names, e.DashboardName)
		}
		if out.NextToken == "" || out.NextToken == next {
			return names, nil
		}
		next = out.NextToken
	}
}

// DeleteDashboards deletes dashboards.
func (c *Client) DeleteDashboards(ctx context.Context, names []string) error {
	p := url.Values{}
	list(p, "DashboardNames", names)
	return c.call(ctx, "DeleteDashboards", p, nil)
}
