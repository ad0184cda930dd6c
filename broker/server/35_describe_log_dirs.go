package server

// DescribeLogDirs: v1-4
//
// Behaviour:
//   - One log directory (the data directory) holding every partition; the
//     size of each partition's log from storage. OffsetLag is 0: there are
//     no future replicas being moved.
//   - A null topic list describes every partition; unknown topics and
//     partitions are left out, as Kafka does.
//   - v4+: the file system's total and usable bytes (statfs).
//   - Needs DESCRIBE on the cluster: without it v3+ answer
//     CLUSTER_AUTHORIZATION_FAILED, v1-2 no directory (as Kafka).
//
// Version notes:
//   - v1: floor in Kafka 4 (KIP-896); v2: flexible; v3: top-level error;
//     v4: TotalBytes/UsableBytes (KIP-827).

import (
	"context"
	"path/filepath"
	"syscall"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var describeLogDirsAPI = api{key: 35, min: 1, max: 4,
	handle: func(ctx context.Context, s *Server, c *conn, r kmsg.Request) (kmsg.Response, error) {
		return s.handleDescribeLogDirs(ctx, s.authFor(c, 35), r.(*kmsg.DescribeLogDirsRequest)), nil
	}}

func (s *Server) handleDescribeLogDirs(ctx context.Context, az reqAuth, req *kmsg.DescribeLogDirsRequest) *kmsg.DescribeLogDirsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)
	if !az.cluster(ctx, kmsg.ACLOperationDescribe) {
		// v3+ carry the error; older versions answer no directory, as
		// Kafka does.
		if req.Version >= 3 {
			resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		}
		return resp
	}
	dir := kmsg.NewDescribeLogDirsResponseDir()
	dir.Dir = s.dataDir
	if abs, err := filepath.Abs(s.dataDir); err == nil {
		dir.Dir = abs
	}
	dir.TotalBytes, dir.UsableBytes = -1, -1
	var fs syscall.Statfs_t
	if err := syscall.Statfs(s.dataDir, &fs); err == nil {
		dir.TotalBytes = int64(fs.Blocks) * fs.Bsize
		dir.UsableBytes = int64(fs.Bavail) * fs.Bsize
	}
	describe := func(t *topic, indexes []int32) {
		dt := kmsg.NewDescribeLogDirsResponseDirTopic()
		dt.Topic = t.name
		for _, i := range indexes {
			p, ok := t.partition(i)
			if !ok || p.log == nil { // no replica here
				continue
			}
			dp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
			dp.Partition = i
			dp.Size = p.log.Size()
			dt.Partitions = append(dt.Partitions, dp)
		}
		if len(dt.Partitions) > 0 {
			dir.Topics = append(dir.Topics, dt)
		}
	}
	if req.Topics == nil {
		for _, t := range s.sortedTopics() {
			all := make([]int32, len(t.partitions))
			for i := range all {
				all[i] = int32(i)
			}
			describe(t, all)
		}
	} else {
		for _, rt := range req.Topics {
			if t, ok := s.lookupTopic(rt.Topic); ok {
				describe(t, rt.Partitions)
			}
		}
	}
	resp.Dirs = []kmsg.DescribeLogDirsResponseDir{dir}
	return resp
}
