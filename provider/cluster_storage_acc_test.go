package provider

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tributary/tributary/internal/awsconfig"
	"github.com/tributary/tributary/internal/localcloud"
	"github.com/tributary/tributary/internal/testenv"
	"github.com/tributary/tributary/provider/internal/fleet"
)

// sizedCloud is a local cloud of its own whose volumes are filesystems of
// their size (they fill up, and grow as EBS volumes do), with the broker
// image, and the volume companions checking every two seconds.
type sizedCloud struct {
	cloud   *localcloud.Cloud
	clients *awsconfig.Clients
}

func startSizedCloud(t *testing.T) *sizedCloud {
	t.Helper()
	testenv.Root(t, "sized local cloud volumes (loop devices and mounts)")
	for _, tool := range []string{"losetup", "mkfs.xfs", "xfs_growfs", "xfs_info"} {
		pkg := "xfsprogs"
		if tool == "losetup" {
			pkg = "mount"
		}
		testenv.Tool(t, tool, pkg)
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		testenv.Missing(t, "loop devices are unavailable here (/dev/loop-control missing)")
	}
	dir := t.TempDir()
	logFile, err := os.Create(filepath.Join(dir, "localcloud.log"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := localcloud.Start(context.Background(), localcloud.Options{
		StateDir: filepath.Join(dir, "cloud"), BrokerBinary: accEnv.brokerBinary, BrokerVersion: accEnv.version,
		StopGracePeriod: 10 * time.Second, AutoScalingInterval: 3 * time.Second, SizedVolumes: true,
		InstanceEnv: []string{"TRIBUTARY_VOLUME_WATCH_INTERVAL=2s"},
		Logger:      slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatalf("starting a local cloud with sized volumes: %v", err)
	}
	t.Cleanup(func() {
		err := c.Close()
		logFile.Close()
		// The endpoint's shutdown may time out on connections the
		// provider's own clients keep; what matters is that the volumes
		// were released: no loop device may still hold a backing file.
		if err != nil {
			t.Logf("closing the sized local cloud: %v", err)
		}
		out, lerr := exec.Command("losetup", "-a").CombinedOutput()
		if lerr != nil || strings.Contains(string(out), dir) {
			t.Errorf("loop devices left behind by the sized local cloud (%v):\n%s", lerr, out)
		}
	})
	cfg := awsconfig.Config{Region: c.Region(), SkipMetadataAPICheck: true, SkipRegionValidation: true,
		AccessKey: localcloud.AccessKeyID, SecretKey: localcloud.SecretAccessKey, Endpoints: map[awsconfig.Service]string{}}
	for _, svc := range awsconfig.Services {
		cfg.Endpoints[svc] = c.Endpoint()
	}
	cl, err := awsconfig.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &sizedCloud{cloud: c, clients: cl}
}

func (sc *sizedCloud) fleet() *fleet.Fleet {
	return &fleet.Fleet{EC2: sc.clients.EC2, KMS: sc.clients.KMS, IAM: sc.clients.IAM, AutoScaling: sc.clients.AutoScaling, PollInterval: 200 * time.Millisecond}
}

func (sc *sizedCloud) config(name, autoscaling string) string {
	return fmt.Sprintf(`provider "tributary" {
  region                  = %[1]q
  access_key              = "test"
  secret_key              = "test"
  skip_metadata_api_check = true
  skip_region_validation  = true
%[7]s}

resource "tributary_cluster" "test" {
  name               = %[3]q
  broker_version     = %[4]q
  instance_type      = %[5]q
  client_cidr_blocks = ["127.0.0.0/8"]
`+plaintextCluster+`

  storage {
    volume_size = 1
    %[6]s
  }
}
`, sc.cloud.Region(), sc.cloud.Endpoint(), name, accEnv.version, accInstanceType(), autoscaling, accEndpoints(sc.cloud.Endpoint()))
}

// fillState is what the full-disk test learned, step to step.
type fillState struct {
	instanceID string
	pid        int
	acked      []string
}

// TestAccCluster_storageAutoscaling fills broker 1's 1 GiB volume (a topic
// placed on it alone) until the broker refuses produce with
// KAFKA_STORAGE_ERROR; the full volume is reported (the companion's log,
// and the broker's KafkaDataLogsDiskUsed at 100%). Storage autoscaling then
// turned on (target 60%, at most 2 GiB) grows the volume by itself: the
// filesystem grows online, produce resumes on the same broker process (no
// restart), every acknowledged record reads back, and Terraform shows the
// grown volume without a diff.
//
// It fills a real filesystem, so it runs against a local cloud of its own
// with sized volumes (root, loop devices); against other endpoints it would
// fill a real EBS volume and is not run.
func TestAccCluster_storageAutoscaling(t *testing.T) {
	accParallel(t)
	skipWithoutRunningBrokers(t)
	if accEnv.cloud == nil {
		t.Skip("fills a broker's volume: runs against the in-process local cloud with sized volumes, not against " + accEnv.endpoint)
	}
	testAccPreCheck(t)
	sc := startSizedCloud(t)
	name := accName(t)
	st := &fillState{}
	auto := "autoscaling {\n      target_utilization = 60\n      max_volume_size    = 2\n    }"
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy: func(s *terraform.State) error {
			id := s.RootModule().Resources[clusterResourceName].Primary.Attributes["cluster_id"]
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			left, err := leftoversIn(ctx, sc.clients, id)
			if err == nil && len(left) > 0 {
				err = fmt.Errorf("cluster %s left objects behind after destroy: %s", id, strings.Join(left, ", "))
			}
			return err
		},
		Steps: []resource.TestStep{
			{
				Config: sc.config(name, ""),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(clusterResourceName, "storage.volume_size", "1"),
					resource.TestCheckResourceAttr(clusterResourceName, "broker_nodes.0.volume_size", "1"),
					sc.fillUntilRefused(t, st),
					sc.checkReportedFull(st),
				),
			},
			{
				Config:           sc.config(name, auto),
				ConfigPlanChecks: expectInPlaceUpdate(),
				Check: resource.ComposeAggregateTestCheckFunc(
					sc.checkGrownAndResumed(t, st),
				),
			},
			{
				// The grown volume is no diff: volume_size is a floor.
				Config: sc.config(name, auto),
				ConfigPlanChecks: resource.ConfigPlanChecks{PreApply: []plancheck.PlanCheck{
					plancheck.ExpectEmptyPlan(),
				}},
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(clusterResourceName, "storage.volume_size", "1"),
					resource.TestCheckResourceAttr(clusterResourceName, "broker_nodes.0.volume_size", "2"),
					resource.TestCheckResourceAttr(clusterResourceName, "storage.autoscaling.target_utilization", "60"),
				),
			},
		},
	})
}

const fillTopic = "fill"

// fillUntilRefused creates a topic on broker 1 alone and produces 256 KiB
// records until the broker refuses them with KAFKA_STORAGE_ERROR.
func (sc *sizedCloud) fillUntilRefused(t *testing.T, st *fillState) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		id, _, err := clusterState(s)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		o, err := sc.fleet().Observe(ctx, id)
		if err != nil {
			return err
		}
		b, _ := o.Broker(1)
		st.instanceID = b.InstanceID
		st.pid, _ = sc.cloud.EC2().Machines().Running(b.InstanceID)
		ep := endpoint(b.PrivateIP, plaintextPort)
		if err := createTopicOn(ctx, ep, fillTopic, 1); err != nil {
			return err
		}
		// One record with the usual retries: the topic is served once
		// every broker has its metadata.
		if err := produce(ctx, ep, fillTopic, 0, 1); err != nil {
			return fmt.Errorf("producing the first record to %s: %w", fillTopic, err)
		}
		// Uncompressed: franz-go compresses by default, and the records
		// would then take a fraction of their size on disk.
		cl, err := kafkaClient(ep, kgo.RecordRetries(0), kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(16),
			kgo.ProducerBatchCompression(kgo.NoCompression()))
		if err != nil {
			return err
		}
		defer cl.Close()
		value := strings.Repeat("x", 256<<10)
		start := time.Now()
		for i := 0; ; i++ {
			key := "record-" + strconv.Itoa(i)
			err := cl.ProduceSync(ctx, &kgo.Record{Topic: fillTopic, Key: []byte(key), Value: []byte(value)}).FirstErr()
			switch {
			case err == nil:
				st.acked = append(st.acked, key)
			case errors.Is(err, kerr.KafkaStorageError):
				t.Logf("full disk: broker 1 refused record %d with KAFKA_STORAGE_ERROR after %d records (%d MiB) in %s",
					i, len(st.acked), len(st.acked)/4, time.Since(start).Round(time.Second))
				return nil
			default:
				return fmt.Errorf("producing record %d to the filling volume: %w (want success or KAFKA_STORAGE_ERROR)", i, err)
			}
			if ctx.Err() != nil {
				return fmt.Errorf("the 1 GiB volume never filled: %d records acknowledged", len(st.acked))
			}
		}
	}
}

// checkReportedFull checks the companion logged the full volume on the
// instance console and the broker reports it used at 100%.
func (sc *sizedCloud) checkReportedFull(st *fillState) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		ep, err := brokerEndpoint(s, 1)
		if err != nil {
			return err
		}
		ip, _, _ := strings.Cut(ep, ":")
		deadline := time.Now().Add(30 * time.Second)
		for {
			console, cerr := sc.console(st.instanceID)
			used, merr := dataDiskUsed(ip)
			if cerr == nil && merr == nil && strings.Contains(console, "the data volume is full") && used >= 0.99 {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the full volume is not reported: data disk used %.3f (%v), companion log says full: %v (%v)",
					used, merr, strings.Contains(console, "the data volume is full"), cerr)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
}

func (sc *sizedCloud) console(instanceID string) (string, error) {
	out, err := sc.clients.EC2.GetConsoleOutput(context.Background(), &ec2.GetConsoleOutputInput{InstanceId: aws.String(instanceID), Latest: aws.Bool(true)})
	if err != nil {
		return "", err
	}
	b, err := base64.StdEncoding.DecodeString(aws.ToString(out.Output))
	return string(b), err
}

// dataDiskUsed reads tributary_data_disk_used_ratio from a broker's
// Prometheus endpoint.
func dataDiskUsed(ip string) (float64, error) {
	resp, err := http.Get("http://" + ip + ":11001/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "tributary_data_disk_used_ratio "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, errors.New("no tributary_data_disk_used_ratio in /metrics")
}

// checkGrownAndResumed waits for the broker's companion to grow its volume
// (autoscaling: 100% used is past the 60% target; 1 GiB + max(10 GiB, 10%),
// capped at 2 GiB), then produces again to the same broker process and
// reads back every acknowledged record.
func (sc *sizedCloud) checkGrownAndResumed(t *testing.T, st *fillState) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		id, _, err := clusterState(s)
		if err != nil {
			return err
		}
		ep, err := brokerEndpoint(s, 1)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		start := time.Now()
		cl, err := kafkaClient(ep, kgo.RecordRetries(0), kgo.ProducerBatchCompression(kgo.NoCompression()))
		if err != nil {
			return err
		}
		defer cl.Close()
		value := strings.Repeat("y", 256<<10)
		resumed := 0
		for resumed < 20 {
			key := "after-" + strconv.Itoa(resumed)
			err := cl.ProduceSync(ctx, &kgo.Record{Topic: fillTopic, Key: []byte(key), Value: []byte(value)}).FirstErr()
			switch {
			case err == nil:
				if resumed == 0 {
					t.Logf("storage autoscaling: produce resumed %s after the apply", time.Since(start).Round(time.Second))
				}
				st.acked = append(st.acked, key)
				resumed++
			case errors.Is(err, kerr.KafkaStorageError) && resumed == 0:
				select {
				case <-ctx.Done():
					return fmt.Errorf("produce did not resume within 3 minutes of turning storage autoscaling on")
				case <-time.After(time.Second):
				}
			default:
				return fmt.Errorf("producing after the volume grew: %w", err)
			}
		}
		o, err := sc.fleet().Observe(ctx, id)
		if err != nil {
			return err
		}
		b, _ := o.Broker(1)
		if b.VolumeSizeGiB != 2 {
			return fmt.Errorf("broker 1's volume is %d GiB, want 2 (autoscaling's step capped at its maximum)", b.VolumeSizeGiB)
		}
		if pid, _ := sc.cloud.EC2().Machines().Running(st.instanceID); b.InstanceID != st.instanceID || pid != st.pid {
			return fmt.Errorf("broker 1 restarted: instance %s pid %d, was %s pid %d", b.InstanceID, pid, st.instanceID, st.pid)
		}
		console, err := sc.console(st.instanceID)
		if err != nil {
			return err
		}
		for _, want := range []string{"storage autoscaling: the data volume is used past its target", "the data volume's filesystem grew online", "the data volume has room again"} {
			if !strings.Contains(console, want) {
				return fmt.Errorf("the companion's log does not say %q", want)
			}
		}
		return sc.consumeAll(ctx, ep, st.acked)
	}
}

// consumeAll reads the fill topic from its start until it has read every
// acknowledged key. It waits for the keys themselves, not for as many
// records: the topic also holds records that are not in keys (the first
// one, produced with the usual retries, and any the broker wrote but
// refused to acknowledge), and counting those stopped the read one
// acknowledged record short, which was then reported lost.
func (sc *sizedCloud) consumeAll(ctx context.Context, ep string, keys []string) error {
	cl, err := kafkaClient(ep, kgo.ConsumeTopics(fillTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<20))
	if err != nil {
		return err
	}
	defer cl.Close()
	missing := map[string]bool{}
	for _, k := range keys {
		missing[k] = true
	}
	for len(missing) > 0 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			var lost []string
			for _, k := range keys {
				if missing[k] {
					lost = append(lost, k)
				}
			}
			return fmt.Errorf("read %d of %d acknowledged records (%w); not read: %s", len(keys)-len(missing), len(keys), ctx.Err(), strings.Join(lost, ", "))
		}
		fetches.EachRecord(func(r *kgo.Record) { delete(missing, string(r.Key)) })
	}
	return nil
}
