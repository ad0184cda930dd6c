package iamauth

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
)

// FranzGoMechanism is a franz-go SASL/OAUTHBEARER mechanism for clusterID:
// every connection and every re-authentication presents a fresh token made
// from cfg, so a long-lived client never sends an expired one.
//
//	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DialTLSConfig(tlsCfg),
//		kgo.SASL(iamauth.FranzGoMechanism(awsCfg, clusterID)))
func FranzGoMechanism(cfg aws.Config, clusterID string) sasl.Mechanism {
	return oauth.Oauth(func(ctx context.Context) (oauth.Auth, error) {
		tok, err := NewToken(ctx, cfg, clusterID)
		if err != nil {
			return oauth.Auth{}, err
		}
		return oauth.Auth{Token: tok.Value}, nil
	})
}
