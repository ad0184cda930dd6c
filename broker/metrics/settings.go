package metrics

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tributary/tributary/broker/config"
)

// Config keys of CloudWatch shipping, as the boot agent renders them into
// the broker's properties file (broker/boot/render.go).
const (
	KeyClusterName         = "tributary.cluster.name"
	KeyCloudWatchEnable    = "tributary.metrics.cloudwatch.enable"
	KeyCloudWatchNamespace = "tributary.metrics.cloudwatch.namespace"
	KeyCloudWatchLevel     = "tributary.metrics.cloudwatch.level"
	KeyCloudWatchInterval  = "tributary.metrics.cloudwatch.interval.ms"
)

// CloudWatchSettings say whether and how the broker ships metrics.
type CloudWatchSettings struct {
	Enabled     bool
	Namespace   string
	Level       Level
	Interval    time.Duration
	ClusterName string // the `Cluster Name` dimension; also used without shipping (Prometheus info)
}

// DefaultInterval is MSK's: metrics are pushed every minute.
const DefaultInterval = time.Minute

// ParseCloudWatchSettings reads the settings through get, which returns a
// key's value and whether it is set (a properties file's lookup, or the
// broker config's Get once it knows the keys). Unset keys take defaults:
// off, level DEFAULT, interval 60 s. A namespace is required when shipping
// is on, and may not start with AWS/ (CloudWatch refuses it).
func ParseCloudWatchSettings(get func(key string) (string, bool)) (CloudWatchSettings, error) {
	s := CloudWatchSettings{Level: LevelDefault, Interval: DefaultInterval}
	var errs []error
	if v, ok := get(KeyClusterName); ok {
		s.ClusterName = strings.TrimSpace(v)
	}
	if v, ok := get(KeyCloudWatchEnable); ok && strings.TrimSpace(v) != "" {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want true or false", KeyCloudWatchEnable, v))
		}
		s.Enabled = b
	}
	if v, ok := get(KeyCloudWatchNamespace); ok {
		s.Namespace = strings.TrimSpace(v)
	}
	if v, ok := get(KeyCloudWatchLevel); ok && strings.TrimSpace(v) != "" {
		l, err := ParseLevel(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", KeyCloudWatchLevel, err))
		}
		s.Level = l
	}
	if v, ok := get(KeyCloudWatchInterval); ok && strings.TrimSpace(v) != "" {
		ms, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s=%q: want milliseconds", KeyCloudWatchInterval, v))
		case ms < 1000:
			errs = append(errs, fmt.Errorf("%s=%d: must be at least 1000", KeyCloudWatchInterval, ms))
		default:
			s.Interval = time.Duration(ms) * time.Millisecond
		}
	}
	if s.Enabled {
		switch {
		case s.Namespace == "":
			errs = append(errs, fmt.Errorf("%s is required when %s=true", KeyCloudWatchNamespace, KeyCloudWatchEnable))
		case strings.HasPrefix(s.Namespace, "AWS/"):
			errs = append(errs, fmt.Errorf("%s=%q: namespaces starting with AWS/ are reserved by AWS", KeyCloudWatchNamespace, s.Namespace))
		}
	}
	return s, errors.Join(errs...)
}

// LoadCloudWatchSettings reads the settings from a broker properties file
// (the --config file of `tributary-broker run`); "" gives the defaults.
func LoadCloudWatchSettings(path string) (CloudWatchSettings, error) {
	if path == "" {
		return ParseCloudWatchSettings(func(string) (string, bool) { return "", false })
	}
	f, err := os.Open(path)
	if err != nil {
		return CloudWatchSettings{}, fmt.Errorf("reading CloudWatch settings: %w", err)
	}
	defer f.Close()
	props, err := config.ParseProperties(f)
	if err != nil {
		return CloudWatchSettings{}, fmt.Errorf("reading CloudWatch settings from %s: %w", path, err)
	}
	byKey := make(map[string]string, len(props))
	for _, p := range props {
		byKey[p.Key] = p.Value // later keys win, as in Java
	}
	s, err := ParseCloudWatchSettings(func(k string) (string, bool) { v, ok := byKey[k]; return v, ok })
	if err != nil {
		return s, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}
