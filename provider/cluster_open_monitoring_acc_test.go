package provider

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/tributary/tributary/provider/internal/fleet"
)

// openMonitoringConfig is the test cluster with both exporters open to
// cidrs, or without open monitoring when cidrs is empty.
func openMonitoringConfig(name string, cidrs ...string) string {
	om := ""
	if len(cidrs) > 0 {
		om = fmt.Sprintf(`
  monitoring_cidr_blocks = [%s]
  open_monitoring {
    prometheus {
      jmx_exporter {
        enabled_in_broker = true
      }
      node_exporter {
        enabled_in_broker = true
      }
    }
  }`, `"`+strings.Join(cidrs, `", "`)+`"`)
	}
	return testAccProviderConfig() + fmt.Sprintf(`
resource "tributary_cluster" "test" {
  name               = %[1]q
  broker_version     = %[2]q
  instance_type      = %[3]q
  brokers_per_az     = 1
  client_cidr_blocks = ["127.0.0.0/8"]
`+plaintextCluster+`
%[4]s

  storage {
    volume_size = 10
  }

  timeouts {
    create = "4m"
    update = "8m"
    delete = "4m"
  }
}
`, name, accEnv.version, accInstanceType(), om)
}

// outsideSource is a loopback address no local-cloud instance holds: a
// scrape from it comes from outside the monitoring CIDR blocks.
const outsideSource = "127.254.254.254"

// TestAccCluster_openMonitoring: with both exporters enabled for
// 127.0.0.1/32, every broker serves its broker metrics on 11001 and its
// host metrics (node_exporter names) on 11002 to a scrape from 127.0.0.1,
// closes a scrape from any other source, and the security group opens
// exactly those ports to exactly that block; client_cidr_blocks reads back
// unmixed. Removing open monitoring, in place, closes the security group's
// ports and stops 11002.
func TestAccCluster_openMonitoring(t *testing.T) {
	accParallel(t)
	skipWithoutRunningBrokers(t)
	name := accName(t)
	resource.Test(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: testAccProtoV6ProviderFactories,
		CheckDestroy:             testAccCheckClusterDestroyed,
		Steps: []resource.TestStep{
			{
				Config: openMonitoringConfig(name, "127.0.0.1/32"),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr(clusterResourceName, "open_monitoring.prometheus.jmx_exporter.enabled_in_broker", "true"),
					resource.TestCheckResourceAttr(clusterResourceName, "monitoring_cidr_blocks.#", "1"),
					resource.TestCheckTypeSetElemAttr(clusterResourceName, "monitoring_cidr_blocks.*", "127.0.0.1/32"),
					resource.TestCheckResourceAttr(clusterResourceName, "client_cidr_blocks.#", "1"),
					testAccCheckMonitoringRules([]int32{fleet.MetricsPort, fleet.NodeMetricsPort}, "127.0.0.1/32"),
					testAccCheckScrapes(true),
				),
			},
			{
				Config:           openMonitoringConfig(name),
				ConfigPlanChecks: expectInPlaceUpdate(),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckNoResourceAttr(clusterResourceName, "open_monitoring.prometheus.jmx_exporter.enabled_in_broker"),
					resource.TestCheckResourceAttr(clusterResourceName, "monitoring_cidr_blocks.#", "0"),
					testAccCheckMonitoringRules(nil, ""),
					testAccCheckScrapes(false),
				),
			},
		},
	})
}

// testAccCheckMonitoringRules checks that the cluster's security group
// opens exactly ports (and no other open monitoring port) to cidr.
func testAccCheckMonitoringRules(ports []int32, cidr string) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		o, err := observedCluster(s)
		if err != nil {
			return err
		}
		out, err := accEnv.clients.EC2.DescribeSecurityGroups(context.Background(), &ec2.DescribeSecurityGroupsInput{GroupIds: []string{o.SecurityGroupID}})
		if err != nil {
			return err
		}
		var open []int32
		for _, p := range out.SecurityGroups[0].IpPermissions {
			port := aws.ToInt32(p.FromPort)
			if port != fleet.MetricsPort && port != fleet.NodeMetricsPort {
				continue
			}
			for _, r := range p.IpRanges {
				if aws.ToString(r.CidrIp) != cidr {
					return fmt.Errorf("port %d is open to %s, want only %s", port, aws.ToString(r.CidrIp), cidr)
				}
				open = append(open, port)
			}
			if len(p.UserIdGroupPairs) > 0 || len(p.Ipv6Ranges) > 0 {
				return fmt.Errorf("port %d is open to more than %s: %+v", port, cidr, p)
			}
		}
		slices.Sort(open)
		if !slices.Equal(open, ports) {
			return fmt.Errorf("open monitoring ports open: %v, want %v", open, ports)
		}
		return nil
	}
}

// testAccCheckScrapes scrapes every broker's two ports from 127.0.0.1
// (inside the CIDR block) and from outsideSource. open: both answer the
// first with their metrics and close the second unanswered. Not open:
// 11002 is not served, and 11001 answers as it did before open monitoring
// existed (any source; the security group keeps it closed on AWS).
func testAccCheckScrapes(open bool) resource.TestCheckFunc {
	return func(s *terraform.State) error {
		o, err := observedCluster(s)
		if err != nil {
			return err
		}
		if len(o.Brokers) == 0 {
			return fmt.Errorf("cluster %s has no brokers", o.ClusterID)
		}
		for _, b := range o.Brokers {
			if b.PrivateIP == outsideSource {
				return fmt.Errorf("broker %d holds %s, the address the test scrapes from as an outsider", b.NodeID, outsideSource)
			}
			url := func(port int) string {
				return fmt.Sprintf("http://%s/metrics", net.JoinHostPort(b.PrivateIP, fmt.Sprint(port)))
			}
			if !open {
				if body, err := scrapeFrom("127.0.0.1", url(fleet.MetricsPort)); err != nil || !strings.Contains(body, "tributary_broker_info") {
					return fmt.Errorf("broker %d at %s without open monitoring: %v", b.NodeID, url(fleet.MetricsPort), err)
				}
				if _, err := scrapeFrom("127.0.0.1", url(fleet.NodeMetricsPort)); err == nil {
					return fmt.Errorf("broker %d serves %s without open monitoring", b.NodeID, url(fleet.NodeMetricsPort))
				}
				continue
			}
			for _, tt := range []struct {
				port   int
				series string
			}{
				{fleet.MetricsPort, "tributary_broker_info"},
				{fleet.NodeMetricsPort, "node_cpu_seconds_total"},
			} {
				body, err := scrapeFrom("127.0.0.1", url(tt.port))
				if err != nil {
					return fmt.Errorf("scraping broker %d at %s from 127.0.0.1: %w", b.NodeID, url(tt.port), err)
				}
				if !strings.Contains(body, tt.series) {
					return fmt.Errorf("broker %d at %s: no %s in the scrape", b.NodeID, url(tt.port), tt.series)
				}
				if body, err := scrapeFrom(outsideSource, url(tt.port)); err == nil {
					return fmt.Errorf("broker %d at %s answered %s, outside the monitoring CIDR blocks: %.200q", b.NodeID, url(tt.port), outsideSource, body)
				}
			}
		}
		return nil
	}
}

// scrapeFrom GETs url over a connection whose source address is src.
func scrapeFrom(src, url string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := &http.Client{Transport: &http.Transport{
		DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}).DialContext,
		DisableKeepAlives: true,
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), nil
}
