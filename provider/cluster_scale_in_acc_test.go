package provider

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/twmb/franz-go/pkg/kadm"
)

// accTopic is a topic a test creates and deletes itself, through the
// bootstrap brokers of the cluster in state when it was created.
type accTopic struct {
	name              string
	replicationFactor int16
	bootstrap         string
}

func (a *accTopic) create() resource.TestCheckFunc {
	return func(s *terraform.State) error {
		_, bootstrap, err := clusterState(s)
		if err != nil {
			return err
		}
		a.bootstrap = bootstrap
		cl, err := kafkaClient(bootstrap)
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, a.replicationFactor, nil, a.name)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			return fmt.Errorf("creating topic %s with replication factor %d: %w", a.name, a.replicationFactor, err)
		}
		return nil
	}
}

func (a *accTopic) delete(t *testing.T) {
	t.Helper()
	cl, err := kafkaClient(a.bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := kadm.NewClient(cl).DeleteTopic(ctx, a.name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("deleting topic %s: %v", a.name, err)
	}
}

// testAccCheckNothingLeftOfRemoved checks that AWS holds the groups and
// launch templates of n brokers only, and no instance of the cluster
// outside them: a removed broker left nothing behind (its volume and
// interface would make Observe list it, which testAccCheckClusterInfrastructure
// counts).
func testAccCheckNothingLeftOfRemoved(n int) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		o, err := observedCluster(s)
		if err != nil {
			return err
		}
		if len(o.Groups) != n || len(o.Templates) != n || len(o.OrphanInstanceIDs) != 0 {
			return fmt.Errorf("cluster %s has groups %v, templates %v and orphan instances %v; want the %d brokers' groups and templates only",
				o.ClusterID, o.Groups, o.Templates, o.OrphanInstanceIDs, n)
		}
		for _, b := range o.Brokers {
			if int(b.NodeID) > n {
				return fmt.Errorf("broker %d of cluster %s is still in AWS (volume %q, interface %q)", b.NodeID, o.ClusterID, b.VolumeID, b.ENIID)
			}
		}
		return nil
	}
}

// TestAccCluster_scaleInRefused: lowering brokers_per_az with
// wait_for_brokers = false is refused at plan time (the brokers would be
// drained through Kafka, which the provider then does not speak), naming
// the setting. It needs no running broker, so it runs against emulators
// that run no instances (moto) too; the scale-in itself, with data, is in
// TestAccCluster_update.
func TestAccCluster_scaleInRefused(t *testing.T) {
	name := accName(t)
	config := func(perAZ int) string {
		return strings.Replace(infraCluster{name: name, volumeSize: 10, clientCIDRs: []string{"127.0.0.0/8"}, tags: map[string]string{"test": name}}.config(),
			"  wait_for_brokers   = false\n", fmt.Sprintf("  wait_for_brokers   = false\n  brokers_per_az     = %d\n", perAZ), 1)
	}
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{
			{
				Config: config(2),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(clusterResourceName, "broker_nodes.#", "6"),
				),
			},
			{
				Config:      config(1),
				ExpectError: regexp.MustCompile(`Removing brokers needs the brokers reachable`),
			},
		},
	})
}
