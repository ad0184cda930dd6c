package kafkatopic

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
)

// BrokerLoad is what one broker carries: how a rebalance left the cluster.
type BrokerLoad struct {
	NodeID int32
	// Rack is the broker's broker.rack: its Availability Zone.
	Rack string
	// Endpoint is host:port of the broker on the listener asked.
	Endpoint string
	// Partitions counts the partition replicas it holds, Leaders the
	// partitions it leads.
	Partitions, Leaders int
	// DiskUsedBytes is the size of the partitions on its log directories
	// (DescribeLogDirs); -1 when the broker could not say.
	DiskUsedBytes int64
}

// Load reads every live broker's load: replicas and leaderships from the
// cluster's metadata (internal topics included), disk use from each
// broker's DescribeLogDirs. Sorted by node id.
func (a *Admin) Load(ctx context.Context) ([]BrokerLoad, error) {
	adm, err := a.admin()
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	md, err := adm.Metadata(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the metadata of cluster %s: %w", a.Conn.ClusterID, err)
	}
	dirs, err := adm.DescribeAllLogDirs(ctx, nil)
	if err != nil {
		// A shard's failure comes with the others' answers; a broker
		// missing from them reports no disk use below.
		a.log(ctx, "could not read every broker's log directories", "error", err.Error())
	}
	return loadFrom(md, dirs), nil
}

// loadFrom counts each broker's replicas and leaderships in md, and sums
// its partitions' sizes in dirs.
func loadFrom(md kadm.Metadata, dirs kadm.DescribedAllLogDirs) []BrokerLoad {
	byID := map[int32]*BrokerLoad{}
	out := make([]BrokerLoad, 0, len(md.Brokers))
	for _, b := range md.Brokers {
		l := BrokerLoad{NodeID: b.NodeID, Endpoint: net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))), DiskUsedBytes: -1}
		if b.Rack != nil {
			l.Rack = *b.Rack
		}
		out = append(out, l)
	}
	slices.SortFunc(out, func(x, y BrokerLoad) int { return int(x.NodeID - y.NodeID) })
	for i := range out {
		byID[out[i].NodeID] = &out[i]
	}
	for _, td := range md.Topics {
		for _, p := range td.Partitions {
			for _, r := range p.Replicas {
				if l, ok := byID[r]; ok {
					l.Partitions++
				}
			}
			if l, ok := byID[p.Leader]; ok && p.Leader >= 0 {
				l.Leaders++
			}
		}
	}
	for id, d := range dirs {
		l, ok := byID[id]
		if !ok || d.Error() != nil {
			continue
		}
		l.DiskUsedBytes = d.Size()
	}
	return out
}
