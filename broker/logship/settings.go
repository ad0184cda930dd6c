package logship

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Config keys of log shipping, as the boot agent renders them into the
// broker's properties file (broker/boot/render.go).
const (
	KeyCloudWatchEnable   = "tributary.logs.cloudwatch.enable"
	KeyCloudWatchLogGroup = "tributary.logs.cloudwatch.log.group"
)

// Settings say whether and where the broker ships its logs.
type Settings struct {
	Enabled  bool
	LogGroup string
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
	return s, errors.Join(errs...)
}
