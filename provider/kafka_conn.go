package provider

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/tributary/tributary/broker/iamauth"
	"github.com/tributary/tributary/internal/bootconfig"
	"github.com/tributary/tributary/provider/internal/fleet"
	"github.com/tributary/tributary/provider/internal/kafkacheck"
	"github.com/tributary/tributary/provider/internal/kafkaconn"
)

// errNoBrokers says a cluster id names no brokers in this account and
// region: the cluster was deleted, or never existed.
var errNoBrokers = errors.New("no brokers")

// kafkaConn returns how to reach the brokers of a cluster through Kafka,
// knowing only its id: the brokers come from the tags of their network
// interfaces (the lookup the cluster resource's Observe starts with), and
// their listeners and CA from a running broker's boot document, so a topic
// needs no connection settings and works in the same apply that creates its
// cluster. errNoBrokers when the cluster has none.
func (d *providerData) kafkaConn(ctx context.Context, clusterID string) (*kafkaconn.Conn, error) {
	f := &fleet.Fleet{EC2: d.aws.EC2}
	brokers, err := f.FindBrokers(ctx, clusterID)
	if err != nil {
		return nil, fmt.Errorf("finding the brokers of cluster %s: %w", clusterID, err)
	}
	if len(brokers) == 0 {
		return nil, fmt.Errorf("cluster %s: %w in this account and region (tagged %s=%s)", clusterID, errNoBrokers, fleet.TagClusterID, clusterID)
	}
	doc, err := d.bootDocument(ctx, brokers)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", clusterID, err)
	}
	a, err := d.accessFromDocument(doc)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", clusterID, err)
	}
	return d.kafkaConnTo(clusterID, brokers, a), nil
}

// bootDocument reads the boot document of the first broker that has an
// instance (every broker of a cluster has the same listeners and CA).
func (d *providerData) bootDocument(ctx context.Context, brokers []fleet.Broker) (*bootconfig.Document, error) {
	var errs []error
	for _, b := range brokers {
		if b.InstanceID == "" {
			continue
		}
		out, err := d.aws.EC2.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{
			InstanceId: aws.String(b.InstanceID), Attribute: ec2types.InstanceAttributeNameUserData,
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("reading the user data of broker %d (%s): %w", b.NodeID, b.InstanceID, err))
			continue
		}
		if out.UserData == nil {
			errs = append(errs, fmt.Errorf("broker %d (%s) has no user data", b.NodeID, b.InstanceID))
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(aws.ToString(out.UserData.Value))
		if err != nil {
			errs = append(errs, fmt.Errorf("the user data of broker %d (%s) is not base64: %w", b.NodeID, b.InstanceID, err))
			continue
		}
		doc, err := bootconfig.Decode(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("the boot document of broker %d (%s): %w", b.NodeID, b.InstanceID, err))
			continue
		}
		return doc, nil
	}
	if len(errs) == 0 {
		return nil, errors.New("no broker has an instance to read its listeners from")
	}
	return nil, errors.Join(errs...)
}

// kafkaAccess is how the provider reaches a cluster's brokers: a client
// port and the options of every client (TLS, SASL).
type kafkaAccess struct {
	Port int
	Opts []kgo.Opt
	// Listener names it, for errors.
	Listener string
}

// accessFromDocument is kafkaAccessTo for a broker's boot document.
func (d *providerData) accessFromDocument(doc *bootconfig.Document) (kafkaAccess, error) {
	ca := ""
	if doc.TLS != nil {
		ca = doc.TLS.CertificateAuthorityPEM
	}
	return d.kafkaAccessTo(doc.ClusterID, doc.Listeners, ca)
}

// kafkaAccessTo is the one place that decides how the provider connects to
// a cluster's brokers, for the cluster resource (from its plan) and for
// everything that knows only the cluster id (from a boot document). In
// order: IAM (9098) with the provider's own AWS credentials (signed for the
// provider's STS endpoint, which must be the one the brokers use), which need
// kafka-cluster:* on the cluster, as an MSK administrator's do; TLS
// without a client certificate (9094); plaintext (9092). TLS trusts only
// the cluster CA and checks the broker's address against its certificate.
func (d *providerData) kafkaAccessTo(clusterID string, listeners []bootconfig.Listener, caPEM string) (kafkaAccess, error) {
	tlsOpt := func() (kgo.Opt, error) {
		pool, err := parseCAPEM(caPEM)
		if err != nil {
			return nil, fmt.Errorf("the cluster CA: %w", err)
		}
		return kgo.DialTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}), nil
	}
	for _, l := range listeners {
		if l.Name == listenerIAM {
			t, err := tlsOpt()
			if err != nil {
				return kafkaAccess{}, err
			}
			return kafkaAccess{Port: l.Port, Listener: l.Name, Opts: []kgo.Opt{t, kgo.SASL(iamauth.FranzGoMechanism(d.aws.STSConfig, clusterID))}}, nil
		}
	}
	for _, l := range listeners {
		if l.Name == listenerTLS && l.ClientAuth != "required" {
			t, err := tlsOpt()
			if err != nil {
				return kafkaAccess{}, err
			}
			return kafkaAccess{Port: l.Port, Listener: l.Name, Opts: []kgo.Opt{t}}, nil
		}
	}
	for _, l := range listeners {
		if l.SecurityProtocol == "PLAINTEXT" {
			return kafkaAccess{Port: l.Port, Listener: l.Name}, nil
		}
	}
	names := make([]string, 0, len(listeners))
	for _, l := range listeners {
		names = append(names, l.Name)
	}
	return kafkaAccess{}, fmt.Errorf("the provider has no way to authenticate to the brokers' listeners (%s): turn on client_authentication.sasl.iam", strings.Join(names, ", "))
}

// kafkaConnTo is the Conn of a cluster's brokers through an access.
func (d *providerData) kafkaConnTo(clusterID string, brokers []fleet.Broker, a kafkaAccess) *kafkaconn.Conn {
	kb := make([]kafkaconn.Broker, 0, len(brokers))
	for _, b := range brokers {
		kb = append(kb, kafkaconn.Broker{NodeID: b.NodeID, Addr: endpoint(b.PrivateIP, a.Port)})
	}
	return kafkaconn.New(clusterID, kb, a.Opts...)
}

// checker returns the Kafka health checks of a cluster's brokers, logging
// their progress to Terraform's log.
func (d *providerData) checker(clusterID string, brokers []fleet.Broker, a kafkaAccess) *kafkacheck.Checker {
	return &kafkacheck.Checker{
		Conn: d.kafkaConnTo(clusterID, brokers, a),
		Log:  func(ctx context.Context, msg string, attrs ...any) { tflog.Info(ctx, msg, fieldsOf(attrs)) },
	}
}
