// Package kafkascram manages the SCRAM credentials of a cluster's users
// through the Kafka protocol (DescribeUserScramCredentials and
// AlterUserScramCredentials, KIP-554), for the tributary_scram_user
// resource. The password is salted here, on the provider's side: only the
// salt and the salted password travel to the brokers, which keep them in
// the cluster's metadata log.
package kafkascram

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary/tributary/broker/security/scram"
	"github.com/tributary/tributary/provider/internal/kafkaconn"
)

// The mechanisms' names, as Kafka's sasl.enabled.mechanisms spells them.
const (
	SHA256 = "SCRAM-SHA-256"
	SHA512 = "SCRAM-SHA-512"
)

// Iteration bounds and default: the broker's (Kafka's) own.
const (
	MinIterations     = scram.MinIterations
	MaxIterations     = scram.MaxIterations
	DefaultIterations = scram.DefaultIterations
)

// ErrNotFound says the user has no credential for the mechanism.
var ErrNotFound = errors.New("SCRAM credential not found")

func mechanism(name string) (kadm.ScramMechanism, error) {
	switch name {
	case SHA256:
		return kadm.ScramSha256, nil
	case SHA512:
		return kadm.ScramSha512, nil
	}
	return 0, fmt.Errorf("mechanism %q: %s or %s", name, SHA512, SHA256)
}

// Admin manages the SCRAM credentials of one cluster.
type Admin struct {
	Conn *kafkaconn.Conn
	Log  kafkaconn.LogFunc
	// PollInterval is the delay between two checks of a wait.
	PollInterval time.Duration
}

// Set creates or replaces the user's credential for the mechanism with a
// new salt, and waits until every live broker describes it with those
// iterations. (A password change that keeps the iterations looks the same
// to DescribeUserScramCredentials, but a broker catches up with the active
// controller before it describes, so a broker that answers has applied
// the change: the old password is refused there.)
func (a *Admin) Set(ctx context.Context, user, mech string, iterations int, password string) error {
	m, err := mechanism(mech)
	if err != nil {
		return err
	}
	if password == "" {
		return errors.New("the password is empty")
	}
	if iterations < MinIterations || iterations > MaxIterations {
		return fmt.Errorf("iterations %d: between %d and %d", iterations, MinIterations, MaxIterations)
	}
	adm, err := a.Conn.Admin()
	if err != nil {
		return err
	}
	defer adm.Close()
	res, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: user, Mechanism: m, Iterations: int32(iterations), Password: password}})
	if err == nil {
		err = firstError(res)
	}
	if err != nil {
		return fmt.Errorf("setting the %s credential of user %s: %w", mech, user, err)
	}
	return a.waitEachBroker(ctx, fmt.Sprintf("the %s credential of user %s on every broker", mech, user), user, mech, iterations)
}

// Iterations returns the iterations of the user's credential for the
// mechanism; ErrNotFound when it has none.
func (a *Admin) Iterations(ctx context.Context, user, mech string) (int, error) {
	if _, err := mechanism(mech); err != nil {
		return 0, err
	}
	cl, err := a.Conn.Client()
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	return describe(ctx, cl, user, mech)
}

// Delete removes the user's credential for the mechanism and waits until
// no live broker describes it; ErrNotFound when it had none.
func (a *Admin) Delete(ctx context.Context, user, mech string) error {
	m, err := mechanism(mech)
	if err != nil {
		return err
	}
	adm, err := a.Conn.Admin()
	if err != nil {
		return err
	}
	defer adm.Close()
	res, err := adm.AlterUserSCRAMs(ctx, []kadm.DeleteSCRAM{{User: user, Mechanism: m}}, nil)
	if err == nil {
		err = firstError(res)
	}
	if errors.Is(err, kerr.ResourceNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("deleting the %s credential of user %s: %w", mech, user, err)
	}
	return a.waitEachBroker(ctx, fmt.Sprintf("the %s credential of user %s to be gone from every broker", mech, user), user, mech, 0)
}

// waitEachBroker waits until every live broker describes the credential
// with iterations, or (iterations 0) none describes it.
func (a *Admin) waitEachBroker(ctx context.Context, what, user, mech string, iterations int) error {
	return a.Conn.WaitEachBroker(ctx, what, a.PollInterval, a.Log, func(ctx context.Context, b *kgo.Broker, id int32) (string, bool) {
		got, err := describe(ctx, b, user, mech)
		switch {
		case errors.Is(err, ErrNotFound) && iterations == 0:
			return "", true
		case errors.Is(err, ErrNotFound):
			return fmt.Sprintf("broker %d does not have it yet", id), false
		case err != nil:
			return fmt.Sprintf("broker %d: %v", id, err), false
		case iterations == 0:
			return fmt.Sprintf("broker %d still has it", id), false
		case got != iterations:
			return fmt.Sprintf("broker %d has it with %d iterations", id, got), false
		}
		return "", true
	})
}

// describe asks one broker (or the cluster) for the iterations of a user's
// credential for a mechanism.
func describe(ctx context.Context, r kmsg.Requestor, user, mech string) (int, error) {
	m, err := mechanism(mech)
	if err != nil {
		return 0, err
	}
	req := kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()
	u := kmsg.NewDescribeUserSCRAMCredentialsRequestUser()
	u.Name = user
	req.Users = append(req.Users, u)
	resp, err := req.RequestWith(ctx, r)
	if err != nil {
		return 0, fmt.Errorf("describing the credentials of user %s: %w", user, err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return 0, fmt.Errorf("describing the credentials of user %s: %w%s", user, err, kafkaconn.ErrMessage(resp.ErrorMessage))
	}
	for _, res := range resp.Results {
		if res.User != user {
			continue
		}
		switch err := kerr.ErrorForCode(res.ErrorCode); {
		case errors.Is(err, kerr.ResourceNotFound):
			return 0, ErrNotFound
		case err != nil:
			return 0, fmt.Errorf("describing the credentials of user %s: %w%s", user, err, kafkaconn.ErrMessage(res.ErrorMessage))
		}
		for _, info := range res.CredentialInfos {
			if info.Mechanism == int8(m) {
				return int(info.Iterations), nil
			}
		}
	}
	return 0, ErrNotFound
}

func firstError(res kadm.AlteredUserSCRAMs) error {
	for _, r := range res.Sorted() {
		if r.Err != nil {
			return fmt.Errorf("%w%s", r.Err, kafkaconn.ErrMessage(&r.ErrMessage))
		}
	}
	return nil
}
