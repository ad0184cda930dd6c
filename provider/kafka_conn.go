package provider

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/twmb/franz-go/pkg/kgo"
	fscram "github.com/twmb/franz-go/pkg/sasl/scram"

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
// their listeners and CA from each running broker's boot document, so a
// topic needs no connection settings and works in the same apply that
// creates its cluster, and while a roll changes the listeners each broker
// is reached through what it serves. errNoBrokers when the cluster has none.
func (d *providerData) kafkaConn(ctx context.Context, clusterID string) (*kafkaconn.Conn, error) {
	brokers, docs, err := d.clusterDocuments(ctx, clusterID)
	if err != nil {
		return nil, err
	}
	common, own, err := d.clusterAccess(ctx, docs)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", clusterID, err)
	}
	return d.kafkaConnTo(clusterID, brokers, common, own), nil
}

// clusterDocuments finds a cluster's brokers and the boot documents of
// those with a live instance: at least one, or an error.
func (d *providerData) clusterDocuments(ctx context.Context, clusterID string) ([]fleet.Broker, map[int32]*bootconfig.Document, error) {
	f := &fleet.Fleet{EC2: d.aws.EC2}
	brokers, err := f.FindBrokers(ctx, clusterID)
	if err != nil {
		return nil, nil, fmt.Errorf("finding the brokers of cluster %s: %w", clusterID, err)
	}
	if len(brokers) == 0 {
		return nil, nil, fmt.Errorf("cluster %s: %w in this account and region (tagged %s=%s)", clusterID, errNoBrokers, fleet.TagClusterID, clusterID)
	}
	docs, err := d.liveDocuments(ctx, brokers)
	if len(docs) == 0 {
		if err == nil {
			err = errors.New("no broker has an instance to read its listeners from")
		}
		return nil, nil, fmt.Errorf("cluster %s: %w", clusterID, err)
	}
	return brokers, docs, nil
}

// instanceDocument reads the boot document a broker's instance was
// launched with, as EC2 returns its user data.
func (d *providerData) instanceDocument(ctx context.Context, b fleet.Broker) (*bootconfig.Document, error) {
	out, err := d.aws.EC2.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{
		InstanceId: aws.String(b.InstanceID), Attribute: ec2types.InstanceAttributeNameUserData,
	})
	if err != nil {
		return nil, fmt.Errorf("reading the user data of broker %d (%s): %w", b.NodeID, b.InstanceID, err)
	}
	if out.UserData == nil {
		return nil, fmt.Errorf("broker %d (%s) has no user data", b.NodeID, b.InstanceID)
	}
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(out.UserData.Value))
	if err != nil {
		return nil, fmt.Errorf("the user data of broker %d (%s) is not base64: %w", b.NodeID, b.InstanceID, err)
	}
	doc, err := bootconfig.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("the boot document of broker %d (%s): %w", b.NodeID, b.InstanceID, err)
	}
	return doc, nil
}

// liveDocuments reads the boot document of every broker with a live
// instance, by node id: what each broker serves now, which differs from
// broker to broker while a roll changes the listeners. Brokers whose
// document cannot be read are left out, and their errors returned.
func (d *providerData) liveDocuments(ctx context.Context, brokers []fleet.Broker) (map[int32]*bootconfig.Document, error) {
	out := map[int32]*bootconfig.Document{}
	var errs []error
	for _, b := range brokers {
		if b.InstanceID == "" || !b.HasLiveInstance() && b.InstanceState != "" {
			continue
		}
		doc, err := d.instanceDocument(ctx, b)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[b.NodeID] = doc
	}
	return out, errors.Join(errs...)
}

// kafkaAccess is how the provider reaches a cluster's brokers: a client
// port and the options of every client (TLS, SASL).
type kafkaAccess struct {
	Port int
	Opts []kgo.Opt
	// Listener names it, for errors.
	Listener string
	// listener is the boot document's listener it goes through.
	listener bootconfig.Listener
}

// accessFromDocument is kafkaAccessTo for a broker's boot document, with
// the provider's login the document carries sealed for it.
func (d *providerData) accessFromDocument(ctx context.Context, doc *bootconfig.Document) (kafkaAccess, error) {
	login, err := d.documentLogin(ctx, doc)
	if err != nil {
		return kafkaAccess{}, err
	}
	return d.kafkaAccessTo(doc.ClusterID, doc.Listeners, documentCA(doc), login)
}

// documentLogin opens the provider's login a boot document carries, when
// the provider needs it: no IAM listener (which the provider prefers, with
// no stored secret) is on, and a listener asks for a login (SCRAM, or a
// client certificate). The envelope of a cluster whose clients need no
// login holds only the CA, which connecting does not need: no KMS call.
func (d *providerData) documentLogin(ctx context.Context, doc *bootconfig.Document) (*bootconfig.ProviderSecrets, error) {
	if hasListener(doc.Listeners, listenerIAM) || doc.ProviderSecrets == nil || !needsLogin(doc.Listeners) {
		return nil, nil
	}
	return openProviderSecrets(ctx, d.aws.KMS, doc)
}

// needsLogin reports whether a listener takes the provider's login: SCRAM,
// or TLS asking for client certificates.
func needsLogin(ls []bootconfig.Listener) bool {
	return slices.ContainsFunc(ls, func(l bootconfig.Listener) bool {
		return l.Name == listenerSCRAM || l.Name == listenerTLS && l.ClientAuth != ""
	})
}

// kafkaAccessTo is the one place that decides how the provider connects to
// a cluster's brokers, for the cluster resource (from its plan) and for
// everything that knows only the cluster id (from a boot document). In
// order: IAM (9098) with the provider's own AWS credentials (signed for the
// provider's STS endpoint, which must be the one the brokers use), which need
// kafka-cluster:* on the cluster, as an MSK administrator's do; SASL/SCRAM
// (9096) and mutual TLS (9094) with the provider's own login (login, nil
// without one); TLS without a client certificate (9094); plaintext (9092).
// TLS trusts only the cluster CA and checks the broker's address against its
// certificate.
func (d *providerData) kafkaAccessTo(clusterID string, listeners []bootconfig.Listener, caPEM string, login *bootconfig.ProviderSecrets) (kafkaAccess, error) {
	var best *bootconfig.Listener
	for i, l := range listeners {
		if usableListener(l, login) && (best == nil || listenerRank(l) < listenerRank(*best)) {
			best = &listeners[i]
		}
	}
	if best == nil {
		names := make([]string, 0, len(listeners))
		for _, l := range listeners {
			names = append(names, l.Name)
		}
		return kafkaAccess{}, fmt.Errorf("the provider has no way to authenticate to the brokers' listeners (%s): turn on client_authentication.sasl.iam or sasl.scram", strings.Join(names, ", "))
	}
	return d.accessThrough(clusterID, *best, caPEM, login)
}

// usableListener reports whether the provider can use a listener: IAM,
// SCRAM and mutual TLS with its own login, TLS without a required client
// certificate, plaintext.
func usableListener(l bootconfig.Listener, login *bootconfig.ProviderSecrets) bool {
	switch {
	case l.Name == listenerIAM:
		return true
	case l.Name == listenerSCRAM:
		return login != nil && login.SCRAMPassword != ""
	case l.Name == listenerTLS:
		return l.ClientAuth != "required" || login != nil && login.ClientCertificatePEM != ""
	}
	return l.SecurityProtocol == "PLAINTEXT"
}

// listenerRank orders the usable listeners as the provider prefers them.
func listenerRank(l bootconfig.Listener) int {
	switch {
	case l.Name == listenerIAM:
		return 0
	case l.Name == listenerSCRAM:
		return 1
	case l.Name == listenerTLS:
		return 2
	}
	return 3
}

// accessThrough is the access through one usable listener.
func (d *providerData) accessThrough(clusterID string, l bootconfig.Listener, caPEM string, login *bootconfig.ProviderSecrets) (kafkaAccess, error) {
	a := kafkaAccess{Port: l.Port, Listener: l.Name, listener: l}
	if l.SecurityProtocol == "PLAINTEXT" {
		return a, nil
	}
	pool, err := parseCAPEM(caPEM)
	if err != nil {
		return kafkaAccess{}, fmt.Errorf("the cluster CA: %w", err)
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	switch {
	case l.Name == listenerIAM:
		a.Opts = append(a.Opts, kgo.SASL(iamauth.FranzGoMechanism(d.aws.STSConfig, clusterID)))
	case l.Name == listenerSCRAM:
		a.Opts = append(a.Opts, kgo.SASL(fscram.Auth{User: login.SCRAMUsername, Pass: login.SCRAMPassword}.AsSha512Mechanism()))
	case l.ClientAuth != "" && login != nil && login.ClientCertificatePEM != "":
		cert, err := tls.X509KeyPair([]byte(login.ClientCertificatePEM), []byte(login.ClientKeyPEM))
		if err != nil {
			return kafkaAccess{}, fmt.Errorf("the provider's client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	a.Opts = append([]kgo.Opt{kgo.DialTLSConfig(cfg)}, a.Opts...)
	return a, nil
}

// clusterAccess is how the provider reaches a cluster whose brokers serve
// the listeners of docs (by node id): through the usable listener the most
// brokers serve (the best of equals), so that one client sees as much of
// the cluster as one listener shows (a broker lists only the brokers that
// serve the listener it is asked on), and each broker that does not serve
// it through its own best. Every broker serves the same listeners unless a
// roll that changes them is under way or stopped halfway.
func (d *providerData) clusterAccess(ctx context.Context, docs map[int32]*bootconfig.Document) (kafkaAccess, map[int32]kafkaAccess, error) {
	ids := slices.Sorted(maps.Keys(docs))
	serves := func(l bootconfig.Listener) (n int) {
		for _, id := range ids {
			if slices.ContainsFunc(docs[id].Listeners, func(o bootconfig.Listener) bool { return listenerEqual(o, l) }) {
				n++
			}
		}
		return n
	}
	var errs []error
	logins := map[int32]*bootconfig.ProviderSecrets{}
	for _, id := range ids {
		login, err := d.documentLogin(ctx, docs[id])
		if err != nil {
			errs = append(errs, fmt.Errorf("broker %d: %w", id, err))
		}
		logins[id] = login
	}
	var common kafkaAccess
	commonServed := 0
	for _, id := range ids {
		for _, l := range docs[id].Listeners {
			if !usableListener(l, logins[id]) {
				continue
			}
			n := serves(l)
			if n < commonServed || (n == commonServed && listenerRank(l) >= listenerRank(common.listener)) {
				continue
			}
			a, err := d.accessThrough(docs[id].ClusterID, l, documentCA(docs[id]), logins[id])
			if err != nil {
				errs = append(errs, fmt.Errorf("broker %d: %w", id, err))
				continue
			}
			common, commonServed = a, n
		}
	}
	if commonServed == 0 {
		if len(errs) == 0 {
			errs = append(errs, errors.New("no broker serves a listener the provider can use"))
		}
		return kafkaAccess{}, nil, errors.Join(errs...)
	}
	own := map[int32]kafkaAccess{}
	for _, id := range ids {
		if slices.ContainsFunc(docs[id].Listeners, func(o bootconfig.Listener) bool { return listenerEqual(o, common.listener) }) {
			continue
		}
		if a, err := d.kafkaAccessTo(docs[id].ClusterID, docs[id].Listeners, documentCA(docs[id]), logins[id]); err == nil {
			own[id] = a
		}
	}
	return common, own, nil
}

// documentCA is the cluster CA of a boot document ("" without TLS).
func documentCA(doc *bootconfig.Document) string {
	if doc.TLS == nil {
		return ""
	}
	return doc.TLS.CertificateAuthorityPEM
}

// kafkaConnTo is the Conn of a cluster's brokers through an access, except
// for the brokers of live, which are reached as they serve now.
func (d *providerData) kafkaConnTo(clusterID string, brokers []fleet.Broker, a kafkaAccess, live map[int32]kafkaAccess) *kafkaconn.Conn {
	kb := make([]kafkaconn.Broker, 0, len(brokers))
	for _, b := range brokers {
		kb = append(kb, connBroker(b.NodeID, b.PrivateIP, a))
		if la, ok := live[b.NodeID]; ok {
			kb[len(kb)-1] = connBroker(b.NodeID, b.PrivateIP, la)
		}
	}
	return kafkaconn.New(clusterID, kb, a.Opts...).WithListener(a.Listener)
}

// connBroker is a broker reached through an access.
func connBroker(nodeID int32, ip string, a kafkaAccess) kafkaconn.Broker {
	return kafkaconn.Broker{NodeID: nodeID, Addr: endpoint(ip, a.Port), Listener: a.Listener, Opts: a.Opts}
}

// checker returns the Kafka health checks of a cluster's brokers, logging
// their progress to Terraform's log; live as for kafkaConnTo.
func (d *providerData) checker(clusterID string, brokers []fleet.Broker, a kafkaAccess, live map[int32]kafkaAccess) *kafkacheck.Checker {
	return &kafkacheck.Checker{
		Conn: d.kafkaConnTo(clusterID, brokers, a, live),
		Log:  func(ctx context.Context, msg string, attrs ...any) { tflog.Info(ctx, msg, fieldsOf(attrs)) },
	}
}
