package config

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
)

// flagSettings maps each flag to the setting it overrides.
var flagSettings = map[string]string{
	"listen":    "listeners",
	"advertise": "advertised.listeners",
	"data-dir":  "log.dirs",
	"node-id":   "node.id",
}

// FromArgs builds the configuration of `tributary-broker run` from its
// arguments: defaults, then the --config file, then the flags, which win.
//
//	--listen HOST:PORT     listeners=PLAINTEXT://HOST:PORT
//	--advertise HOST:PORT  advertised.listeners=<first client listener>://HOST:PORT
//	--data-dir DIR         log.dirs=DIR
//	--node-id N            node.id=N
//	--config FILE          Java-properties file with Kafka setting names
func FromArgs(args []string, stderr io.Writer, log *slog.Logger) (*Config, error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		listen    = fs.String("listen", "", "host:port to serve the Kafka protocol on (default 127.0.0.1:9092)")
		advertise = fs.String("advertise", "", "host:port given to clients (default: the listen address)")
		dataDir   = fs.String("data-dir", "", "data directory (default ./data)")
		nodeID    = fs.Int("node-id", -1, "broker node id (default 1)")
		file      = fs.String("config", "", "Java-properties config file with Kafka setting names")
	)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	c := Default()
	if *file != "" {
		var err error
		if c, err = Load(*file, log); err != nil {
			return nil, err
		}
	}
	var errs []error
	// --listen is applied before --advertise, whatever their order on
	// the command line, because it resets the advertised address.
	var set []*flag.Flag
	fs.Visit(func(f *flag.Flag) { set = append(set, f) })
	sort.SliceStable(set, func(i, j int) bool { return set[i].Name == "listen" && set[j].Name != "listen" })
	for _, f := range set {
		var err error
		switch f.Name {
		case "listen":
			// The flag replaces every configured listener.
			err = c.Set("listeners", "PLAINTEXT://"+*listen)
			if err == nil {
				c.ProtocolMap, c.AdvertisedListeners = "", ""
				c.InterBrokerListenerName, c.ControllerListenerNames = "", ""
			}
		case "advertise":
			// The flag advertises the first client listener.
			ls := c.ClientListeners()
			switch {
			case len(ls) == 0:
				err = fmt.Errorf("no client listener to advertise")
			default:
				if _, _, err = splitHostPort(*advertise); err == nil {
					err = c.Set("advertised.listeners", replaceAdvertised(c.AdvertisedListeners, ls[0].Name, *advertise))
				}
			}
		case "data-dir":
			err = c.Set("log.dirs", *dataDir)
		case "node-id":
			err = c.Set("node.id", strconv.Itoa(*nodeID))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", f.Name, err))
		}
		if name, ok := flagSettings[f.Name]; ok {
			c.markExplicit(name)
		}
	}
	if len(errs) > 0 {
		return nil, errs[0]
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	return c, nil
}

// replaceAdvertised sets name's entry in an advertised.listeners list.
func replaceAdvertised(list, name, addr string) string {
	var out []string
	for _, e := range splitList(list) {
		if n, _, _ := strings.Cut(e, "://"); !strings.EqualFold(n, name) {
			out = append(out, e)
		}
	}
	return strings.Join(append(out, name+"://"+addr), ",")
}
