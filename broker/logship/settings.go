package logship

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/tributary/tributary/internal/bootconfig"
)

// Config keys of log shipping, as the boot agent renders them into the
// broker's properties file (broker/boot/render.go).
const (
	KeyCloudWatchEnable   = "tributary.logs.cloudwatch.enable"
	KeyCloudWatchLogGroup = "tributary.logs.cloudwatch.log.group"
	KeyS3Enable           = "tributary.logs.s3.enable"
	KeyS3Bucket           = "tributary.logs.s3.bucket"
	KeyS3KeyPrefix        = "tributary.logs.s3.key.prefix"
	KeyFirehoseEnable     = "tributary.logs.firehose.enable"
	KeyFirehoseStream     = "tributary.logs.firehose.delivery.stream"
)

// Settings say whether and where the broker ships its logs: Enabled and
// LogGroup for CloudWatch Logs, S3 for S3, Firehose for a Firehose
// delivery stream.
type Settings struct {
	Enabled  bool
	LogGroup string
	S3       S3Settings
	Firehose FirehoseSettings
}

// FirehoseSettings say whether and to which delivery stream the broker
// sends its logs.
type FirehoseSettings struct {
	Enabled        bool
	DeliveryStream string
}

// deliveryStreamName is Firehose's rule for delivery stream names.
var deliveryStreamName = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,64}$`)

// ValidDeliveryStreamName reports whether Firehose accepts name as a
// delivery stream's name.
func ValidDeliveryStreamName(name string) bool { return deliveryStreamName.MatchString(name) }

// S3Settings say whether and where the broker delivers its logs to S3.
type S3Settings struct {
	Enabled bool
	Bucket  string
	// KeyPrefix leads every object's key (the boot agent writes MSK's
	// layout: <prefix>/AWSLogs/<account>/KafkaBrokerLogs/<region>/<cluster>/).
	KeyPrefix string
}

// logGroupName is CloudWatch Logs' rule for group names.
var logGroupName = regexp.MustCompile(`^[.\-_/#A-Za-z0-9]{1,512}$`)

// ValidLogGroupName reports whether CloudWatch Logs accepts name as a log
// group's name.
func ValidLogGroupName(name string) bool { return logGroupName.MatchString(name) }

// ParseSettings reads the settings through get (the broker config's Get).
// Unset, shipping is off; on, a valid log group is required.
func ParseSettings(get func(key string) (string, bool)) (Settings, error) {
	var s Settings
	var errs []error
	if v, ok := get(KeyCloudWatchEnable); ok && strings.TrimSpace(v) != "" {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want true or false", KeyCloudWatchEnable, v))
		}
		s.Enabled = b
	}
	if v, ok := get(KeyCloudWatchLogGroup); ok {
		s.LogGroup = strings.TrimSpace(v)
	}
	if s.Enabled {
		switch {
		case s.LogGroup == "":
			errs = append(errs, fmt.Errorf("%s is required when %s=true", KeyCloudWatchLogGroup, KeyCloudWatchEnable))
		case !ValidLogGroupName(s.LogGroup):
			errs = append(errs, fmt.Errorf("%s=%q: a log group name is 1-512 of the characters a-z A-Z 0-9 . - _ / #", KeyCloudWatchLogGroup, s.LogGroup))
		}
	}
	if v, ok := get(KeyS3Enable); ok && strings.TrimSpace(v) != "" {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want true or false", KeyS3Enable, v))
		}
		s.S3.Enabled = b
	}
	if v, ok := get(KeyS3Bucket); ok {
		s.S3.Bucket = strings.TrimSpace(v)
	}
	if v, ok := get(KeyS3KeyPrefix); ok {
		s.S3.KeyPrefix = strings.TrimSpace(v)
	}
	if s.S3.Enabled {
		if !bootconfig.ValidS3BucketName(s.S3.Bucket) {
			errs = append(errs, fmt.Errorf("%s=%q: an S3 bucket name is 3-63 of a-z 0-9 . -, beginning and ending with a letter or digit (required when %s=true)", KeyS3Bucket, s.S3.Bucket, KeyS3Enable))
		}
		if len(s.S3.KeyPrefix) > 512 || strings.HasPrefix(s.S3.KeyPrefix, "/") {
			errs = append(errs, fmt.Errorf("%s=%q: at most 512 characters, not beginning with /", KeyS3KeyPrefix, s.S3.KeyPrefix))
		}
	}
	if v, ok := get(KeyFirehoseEnable); ok && strings.TrimSpace(v) != "" {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want true or false", KeyFirehoseEnable, v))
		}
		s.Firehose.Enabled = b
	}
	if v, ok := get(KeyFirehoseStream); ok {
		s.Firehose.DeliveryStream = strings.TrimSpace(v)
	}
	if s.Firehose.Enabled && !ValidDeliveryStreamName(s.Firehose.DeliveryStream) {
		errs = append(errs, fmt.Errorf("%s=%q: a delivery stream name is 1-64 of the characters a-z A-Z 0-9 _ . - (required when %s=true)", KeyFirehoseStream, s.Firehose.DeliveryStream, KeyFirehoseEnable))
	}
	return s, errors.Join(errs...)
}

// Destinations are the destinations the settings ship to.
func (s Settings) Destinations() []Destination {
	var d []Destination
	if s.Enabled {
		d = append(d, DestCloudWatchLogs)
	}
	if s.S3.Enabled {
		d = append(d, DestS3)
	}
	if s.Firehose.Enabled {
		d = append(d, DestFirehose)
	}
	return d
}
