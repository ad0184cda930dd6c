// Package kafkacheck asks a Tributary cluster, through the Kafka protocol
// (franz-go), whether it is ready, whether a broker may be stopped without
// taking a partition below min.insync.replicas, and whether a replaced broker
// has rejoined with its partitions in sync; and applies dynamic broker
// configuration. It is what the provider uses to gate creates and rolling
// replacements on the brokers' own view of their health.
package kafkacheck

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/provider/internal/kafkaconn"
)

// Checker talks to one cluster.
type Checker struct {
	// Conn says where the brokers are and how to connect to them.
	Conn *kafkaconn.Conn
	// PollInterval is the delay between two checks (default 1s).
	PollInterval time.Duration
	// Log reports progress (tflog in the provider); may be nil.
	Log func(ctx context.Context, msg string, attrs ...any)

	// dial replaces the TCP dial of the reachability probes (tests).
	dial func(ctx context.Context, addr string) error
}

func (c *Checker) interval() time.Duration {
	if c.PollInterval > 0 {
		return c.PollInterval
	}
	return time.Second
}

func (c *Checker) log(ctx context.Context, msg string, attrs ...any) {
	if c.Log != nil {
		c.Log(ctx, msg, attrs...)
	}
}

// ErrUnreachable says no broker address could even be dialed: the provider
// runs somewhere without a route to the brokers' private addresses.
var ErrUnreachable = errors.New("no broker address is reachable from here")

// reachable reports whether addr answers at the TCP level: a connection, or a
// refusal (the host is there, the broker not listening yet). Timeouts and
// "no route" mean the address cannot be reached from here.
func (c *Checker) reachable(ctx context.Context, addr string) bool {
	dial := c.dial
	if dial == nil {
		dial = dialTCP
	}
	return answered(dial(ctx, addr))
}

func dialTCP(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		conn.Close()
	}
	return err
}

// answered reports whether a dial result shows a host that answers.
func answered(dialErr error) bool {
	return dialErr == nil || errors.Is(dialErr, syscall.ECONNREFUSED) || errors.Is(dialErr, syscall.ECONNRESET)
}

// WaitReady waits until every broker answers a Metadata request that lists
// every broker of the cluster and names a controller: the brokers have
// formed one cluster (a single broker is a cluster of one). If for
// reachWindow no address was reachable at all, it gives up with
// ErrUnreachable, so that a provider running outside the VPC can say so
// instead of waiting out the timeout.
func (c *Checker) WaitReady(ctx context.Context, reachWindow time.Duration) error {
	if err := c.waitReachable(ctx, reachWindow); err != nil {
		return err
	}
	all := c.Conn.NodeIDs()
	return c.pollUntil(ctx, "brokers to form one cluster", func() (string, bool) {
		for _, b := range c.Conn.Brokers {
			if status, ok := c.answers(ctx, b, all); !ok {
				return status, false
			}
		}
		return "", true
	})
}

// WaitBrokerReady waits until one broker answers Metadata listing every
// broker and a controller.
func (c *Checker) WaitBrokerReady(ctx context.Context, nodeID int32) error {
	b, ok := c.Conn.Broker(nodeID)
	if !ok {
		return fmt.Errorf("no broker %d", nodeID)
	}
	all := c.Conn.NodeIDs()
	return c.pollUntil(ctx, fmt.Sprintf("broker %d to serve Kafka", nodeID), func() (string, bool) {
		return c.answers(ctx, b, all)
	})
}

func (c *Checker) waitReachable(ctx context.Context, window time.Duration) error {
	deadline := time.Now().Add(window)
	for {
		for _, b := range c.Conn.Brokers {
			if c.reachable(ctx, b.Addr) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w (tried %s for %s)", ErrUnreachable, strings.Join(c.Conn.Bootstrap(), ","), window)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("trying to reach the brokers: %w", ctx.Err())
		case <-time.After(c.interval()):
		}
	}
}

// cutShort reports whether ctx has ended, also when its deadline has passed
// but its timer has not fired yet. A dial or read bounded by the same
// deadline fails by the network poller's own timer ("i/o timeout"), which
// can come first: on a loaded machine ctx.Err() is still nil for a while
// after such a cut check returns.
func cutShort(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// pollUntil calls check until it reports done or ctx ends, logging each new status.
func (c *Checker) pollUntil(ctx context.Context, what string, check func() (status string, done bool)) error {
	var last string
	for {
		status, done := check()
		if done {
			return nil
		}
		// A check cut short by ctx says only that the time ran out; the
		// status before it says what was still missing, so it is kept.
		if err := cutShort(ctx); err != nil && last != "" {
			return fmt.Errorf("waiting for %s: %w (last status: %s)", what, err, last)
		}
		if status != last {
			c.log(ctx, "waiting for "+what, "status", status)
			last = status
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last status: %s)", what, ctx.Err(), last)
		case <-time.After(c.interval()):
		}
	}
}

// answers asks one broker for metadata and checks it lists wantNodes and
// a controller.
func (c *Checker) answers(ctx context.Context, b kafkaconn.Broker, wantNodes []int32) (string, bool) {
	md, err := c.metadataFrom(ctx, b.Addr)
	if err != nil {
		return fmt.Sprintf("broker %d (%s): %v", b.NodeID, b.Addr, err), false
	}
	var have []int32
	for _, mb := range md.Brokers {
		have = append(have, mb.NodeID)
	}
	for _, n := range wantNodes {
		if !slices.Contains(have, n) && c.mustList(b.Addr, n) {
			return fmt.Sprintf("broker %d (%s) knows brokers %v, not yet %d", b.NodeID, b.Addr, have, n), false
		}
	}
	if md.ControllerID < 0 {
		return fmt.Sprintf("broker %d (%s) reports no controller yet", b.NodeID, b.Addr), false
	}
	return "", true
}

// mustList reports whether the broker asked at addr must list nodeID in its
// metadata: unless the provider reaches nodeID through another listener
// (a roll changing the listeners is under way), which that broker need not
// serve. A broker the provider does not know must always be listed.
func (c *Checker) mustList(addr string, nodeID int32) bool {
	if _, known := c.Conn.Broker(nodeID); !known {
		return true
	}
	return slices.Contains(c.Conn.SameListener(addr), nodeID)
}

// metadataFrom sends one Metadata request to exactly this address.
func (c *Checker) metadataFrom(ctx context.Context, addr string) (*kmsg.MetadataResponse, error) {
	cl, err := c.Conn.Client(addr)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	seeds := cl.SeedBrokers()
	if len(seeds) == 0 {
		return nil, fmt.Errorf("no seed broker for %s", addr)
	}
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{} // no topics, just brokers
	resp, err := seeds[0].Request(ctx, req)
	if err != nil {
		return nil, err
	}
	return resp.(*kmsg.MetadataResponse), nil
}

// partitionView is one broker's view of one partition.
type partitionView struct {
	topic     string
	partition int32
	replicas  []int32
	isr       []int32
	internal  bool
}

// brokerView is what one broker's metadata says about the cluster.
type brokerView struct {
	addr       string
	brokers    []int32
	partitions []partitionView
}

// views asks every broker for its own metadata (all topics), and the
// cluster for each topic's min.insync.replicas. The roll checks judge every
// view: right after a change a broker may still show an older ISR, and the
// safe answer is the one every broker agrees with.
func (c *Checker) views(ctx context.Context) ([]brokerView, map[string]int, error) {
	var out []brokerView
	topics := map[string]bool{}
	for _, b := range c.Conn.Brokers {
		md, err := c.fullMetadataFrom(ctx, b.Addr)
		if err != nil {
			return nil, nil, fmt.Errorf("broker %d (%s): %w", b.NodeID, b.Addr, err)
		}
		v := brokerView{addr: b.Addr}
		for _, mb := range md.Brokers {
			v.brokers = append(v.brokers, mb.NodeID)
		}
		for _, t := range md.Topics {
			name := ""
			if t.Topic != nil {
				name = *t.Topic
			}
			if kerr.ErrorForCode(t.ErrorCode) != nil || name == "" {
				continue
			}
			topics[name] = true
			for _, p := range t.Partitions {
				v.partitions = append(v.partitions, partitionView{topic: name, partition: p.Partition, replicas: p.Replicas, isr: p.ISR, internal: t.IsInternal})
			}
		}
		slices.SortFunc(v.partitions, func(a, b partitionView) int {
			if c := strings.Compare(a.topic, b.topic); c != 0 {
				return c
			}
			return int(a.partition - b.partition)
		})
		out = append(out, v)
	}
	minISR, err := c.minISRs(ctx, slices.Sorted(maps.Keys(topics)))
	return out, minISR, err
}

// fullMetadataFrom asks exactly this broker for the metadata of all topics.
func (c *Checker) fullMetadataFrom(ctx context.Context, addr string) (*kmsg.MetadataResponse, error) {
	cl, err := c.Conn.Client(addr)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	seeds := cl.SeedBrokers()
	if len(seeds) == 0 {
		return nil, fmt.Errorf("no seed broker for %s", addr)
	}
	req := kmsg.NewPtrMetadataRequest() // nil Topics: all topics
	resp, err := seeds[0].Request(ctx, req)
	if err != nil {
		return nil, err
	}
	return resp.(*kmsg.MetadataResponse), nil
}

// minISRs returns each topic's effective min.insync.replicas (1 when unknown).
func (c *Checker) minISRs(ctx context.Context, topics []string) (map[string]int, error) {
	out := map[string]int{}
	if len(topics) == 0 {
		return out, nil
	}
	cl, err := c.Conn.Client()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	cfgs, err := kadm.NewClient(cl).DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("describing topic configs: %w", err)
	}
	for _, rc := range cfgs {
		out[rc.Name] = 1
		for _, cfg := range rc.Configs {
			if cfg.Key == "min.insync.replicas" && cfg.Value != nil {
				if n, err := strconv.Atoi(*cfg.Value); err == nil {
					out[rc.Name] = n
				}
			}
		}
	}
	return out, nil
}

// CanStop returns nil when stopping nodeID keeps every partition at or above
// min.insync.replicas in every broker's view (Strimzi's canRoll rule), and
// an error naming the partitions that would suffer otherwise. A partition
// already below min.insync.replicas also refuses the stop: it would only get
// worse.
func (c *Checker) CanStop(ctx context.Context, nodeID int32) error {
	views, minISRs, err := c.views(ctx)
	if err != nil {
		return err
	}
	var problems []string
	for _, v := range views {
		for _, p := range v.partitions {
			if p.internal || !slices.Contains(p.replicas, nodeID) {
				continue
			}
			minISR := max(minISRs[p.topic], 1)
			isr := len(p.isr)
			after := isr
			if slices.Contains(p.isr, nodeID) {
				after--
			}
			var problem string
			switch {
			case isr < minISR:
				problem = fmt.Sprintf("%s-%d is already under min.insync.replicas (%d in sync, need %d)", p.topic, p.partition, isr, minISR)
			case after < minISR && len(p.replicas) > 1:
				problem = fmt.Sprintf("%s-%d would drop to %d in-sync replicas (min.insync.replicas=%d)", p.topic, p.partition, after, minISR)
			}
			if problem != "" && !slices.Contains(problems, problem) {
				problems = append(problems, problem)
			}
		}
	}
	if len(problems) > 0 {
		const show = 5
		more := ""
		if len(problems) > show {
			more = fmt.Sprintf(" and %d more", len(problems)-show)
			problems = problems[:show]
		}
		return fmt.Errorf("stopping broker %d now would hurt availability: %s%s", nodeID, strings.Join(problems, "; "), more)
	}
	return nil
}

// WaitCanStop waits, up to patience, until CanStop allows stopping nodeID:
// ISR membership moves for a moment after any restart, so one refusal is
// not a verdict. It returns CanStop's last refusal when patience runs out.
func (c *Checker) WaitCanStop(ctx context.Context, nodeID int32, patience time.Duration) error {
	pctx, cancel := context.WithTimeout(ctx, patience)
	defer cancel()
	var last error
	err := c.pollUntil(pctx, fmt.Sprintf("stopping broker %d to be safe", nodeID), func() (string, bool) {
		err := c.CanStop(pctx, nodeID)
		if err == nil {
			return "", true
		}
		// A check cut short by the end of patience says nothing about
		// the brokers; the refusal before it does.
		if pctx.Err() == nil || last == nil {
			last = err
		}
		return err.Error(), false
	})
	if err != nil && last != nil {
		return last
	}
	return err
}

// WaitRejoined waits until every broker sees nodeID registered and in the
// ISR of every partition it replicates, and no partition under
// min.insync.replicas.
func (c *Checker) WaitRejoined(ctx context.Context, nodeID int32) error {
	return c.pollUntil(ctx, fmt.Sprintf("broker %d to catch up", nodeID), func() (string, bool) {
		return c.rejoinedOnce(ctx, nodeID)
	})
}

func (c *Checker) rejoinedOnce(ctx context.Context, nodeID int32) (string, bool) {
	views, minISRs, err := c.views(ctx)
	if err != nil {
		return err.Error(), false
	}
	for _, v := range views {
		// A broker reached through another listener than nodeID (while a
		// roll changes the listeners) need not serve nodeID's.
		if !slices.Contains(v.brokers, nodeID) && c.mustList(v.addr, nodeID) {
			return fmt.Sprintf("%s does not list broker %d yet", v.addr, nodeID), false
		}
		for _, p := range v.partitions {
			if slices.Contains(p.replicas, nodeID) && !slices.Contains(p.isr, nodeID) {
				return fmt.Sprintf("%s: %s-%d: broker %d not in sync yet (ISR %v)", v.addr, p.topic, p.partition, nodeID, p.isr), false
			}
			if len(p.replicas) > 1 && len(p.isr) < max(minISRs[p.topic], 1) {
				return fmt.Sprintf("%s: %s-%d under min.insync.replicas (ISR %v)", v.addr, p.topic, p.partition, p.isr), false
			}
		}
	}
	return "in sync", true
}

// SetClusterConfig sets cluster-wide dynamic broker configs with
// IncrementalAlterConfigs, and removes the keys in remove: their
// cluster-wide value and any broker's own dynamic value are deleted (op
// DELETE), so every broker is back on the value it was started with, its
// default. The cluster-wide request is sent once, routed by the client as
// Kafka routes it, and the metadata log carries it to every broker. It
// returns once every broker reports the result, or with the brokers'
// refusal.
func (c *Checker) SetClusterConfig(ctx context.Context, set map[string]string, remove []string) error {
	if len(set) == 0 && len(remove) == 0 {
		return nil
	}
	if err := c.setClusterConfigRouted(ctx, set, remove); err != nil {
		return err
	}
	return c.waitClusterConfigApplied(ctx, set, remove)
}

func (c *Checker) setClusterConfigRouted(ctx context.Context, set map[string]string, remove []string) error {
	cl, err := c.Conn.Client()
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var alters, deletes []kadm.AlterConfig
	for _, k := range slices.Sorted(maps.Keys(set)) {
		alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: kmsg.StringPtr(set[k])})
	}
	for _, k := range slices.Sorted(slices.Values(remove)) {
		deletes = append(deletes, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k})
	}
	check := func(resps kadm.AlterConfigsResponses, err error) error {
		if err != nil {
			return fmt.Errorf("IncrementalAlterConfigs: %w", err)
		}
		for _, r := range resps {
			if r.Err != nil {
				return fmt.Errorf("IncrementalAlterConfigs (broker resource %q): %w %s", r.Name, r.Err, r.ErrMessage)
			}
		}
		return nil
	}
	if err := check(adm.AlterBrokerConfigs(ctx, append(alters, deletes...))); err != nil {
		return err
	}
	if len(deletes) == 0 {
		return nil
	}
	ids := make([]int32, 0, len(c.Conn.Brokers))
	for _, b := range c.Conn.Brokers {
		ids = append(ids, b.NodeID)
	}
	return check(adm.AlterBrokerConfigs(ctx, deletes, ids...))
}

// clusterConfigPropagation bounds the wait for a routed config change to
// reach every broker's copy of the metadata (normally one Raft round).
const clusterConfigPropagation = 30 * time.Second

// waitClusterConfigApplied waits until every broker reports the change for
// itself, so that an apply returns only once the setting is in effect
// everywhere: each broker answers from its own copy of the metadata, which
// trails the active controller briefly. A set key must have the value; a
// removed one must no longer come from a dynamic value.
func (c *Checker) waitClusterConfigApplied(ctx context.Context, set map[string]string, remove []string) error {
	ctx, cancel := context.WithTimeout(ctx, clusterConfigPropagation)
	defer cancel()
	names := append(slices.Collect(maps.Keys(set)), remove...)
	return c.pollUntil(ctx, "the broker_config change to reach every broker", func() (string, bool) {
		for _, b := range c.Conn.Brokers {
			configs, err := c.brokerConfigs(ctx, b, names)
			if err != nil {
				return fmt.Sprintf("broker %d (%s): %v", b.NodeID, b.Addr, err), false
			}
			for k, want := range set {
				if got, ok := configs[k]; !ok || got.Value == nil || *got.Value != want {
					return fmt.Sprintf("broker %d does not have %s=%q yet", b.NodeID, k, want), false
				}
			}
			for _, k := range remove {
				if got, ok := configs[k]; ok && (got.Source == kmsg.ConfigSourceDynamicBrokerConfig || got.Source == kmsg.ConfigSourceDynamicDefaultBrokerConfig) {
					return fmt.Sprintf("broker %d still has %s from %s", b.NodeID, k, got.Source), false
				}
			}
		}
		return "", true
	})
}

// brokerConfigs asks one broker for its own values of names (DescribeConfigs
// of broker resource <node id>).
func (c *Checker) brokerConfigs(ctx context.Context, b kafkaconn.Broker, names []string) (map[string]kmsg.DescribeConfigsResponseResourceConfig, error) {
	configs, err := c.describeBrokerResource(ctx, b.Addr, strconv.Itoa(int(b.NodeID)), names)
	if err != nil {
		return nil, err
	}
	out := make(map[string]kmsg.DescribeConfigsResponseResourceConfig, len(configs))
	for _, cfg := range configs {
		out[cfg.Name] = cfg
	}
	return out, nil
}

// DynamicClusterConfig returns the cluster-wide dynamic broker settings
// (DescribeConfigs source DYNAMIC_DEFAULT_BROKER_CONFIG) of the first broker
// that answers.
func (c *Checker) DynamicClusterConfig(ctx context.Context) (map[string]string, error) {
	var lastErr error
	for _, b := range c.Conn.Brokers {
		out, err := c.dynamicDefaults(ctx, b.Addr)
		if err == nil {
			return out, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("no broker answered DescribeConfigs: %w", lastErr)
}

func (c *Checker) dynamicDefaults(ctx context.Context, addr string) (map[string]string, error) {
	configs, err := c.clusterDefaultConfigs(ctx, addr)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, cfg := range configs {
		if cfg.Source == kmsg.ConfigSourceDynamicDefaultBrokerConfig && cfg.Value != nil {
			out[cfg.Name] = *cfg.Value
		}
	}
	return out, nil
}

// clusterDefaultConfigs asks one broker for the cluster-wide broker configs
// (DescribeConfigs of broker resource "").
func (c *Checker) clusterDefaultConfigs(ctx context.Context, addr string) ([]kmsg.DescribeConfigsResponseResourceConfig, error) {
	return c.describeBrokerResource(ctx, addr, "", nil)
}

// describeBrokerResource asks the broker at addr to describe one broker
// resource ("" for the cluster-wide default); names limits the answer.
func (c *Checker) describeBrokerResource(ctx context.Context, addr, resource string, names []string) ([]kmsg.DescribeConfigsResponseResourceConfig, error) {
	cl, err := c.Conn.Client(addr)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	seeds := cl.SeedBrokers()
	if len(seeds) == 0 {
		return nil, fmt.Errorf("no seed broker for %s", addr)
	}
	req := kmsg.NewPtrDescribeConfigsRequest()
	rr := kmsg.NewDescribeConfigsRequestResource()
	rr.ResourceType, rr.ResourceName, rr.ConfigNames = kmsg.ConfigResourceTypeBroker, resource, names
	req.Resources = append(req.Resources, rr)
	kresp, err := seeds[0].Request(ctx, req)
	if err != nil {
		return nil, err
	}
	var out []kmsg.DescribeConfigsResponseResourceConfig
	for _, r := range kresp.(*kmsg.DescribeConfigsResponse).Resources {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			return nil, err
		}
		out = append(out, r.Configs...)
	}
	return out, nil
}
