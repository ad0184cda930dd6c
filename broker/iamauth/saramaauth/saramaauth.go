// Package saramaauth adapts iamauth tokens to sarama's SASL/OAUTHBEARER.
// It is its own package so that franz-go users of iamauth do not build
// sarama.
//
//	conf := sarama.NewConfig()
//	conf.Net.TLS.Enable = true
//	conf.Net.SASL.Enable = true
//	conf.Net.SASL.Mechanism = sarama.SASLTypeOAuth
//	conf.Net.SASL.TokenProvider = saramaauth.New(awsCfg, clusterID)
package saramaauth

import (
	"context"
	"fmt"
	"time"

	"github.com/IBM/sarama"
	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/tributary/tributary/broker/iamauth"
)

// Timeout bounds one token's making (credential retrieval may call IMDS or
// STS): sarama's Token has no context, and its contract asks for an error
// rather than a hang.
const Timeout = 10 * time.Second

// TokenProvider is a sarama.AccessTokenProvider for one cluster.
type TokenProvider struct {
	cfg       aws.Config
	clusterID string
}

var _ sarama.AccessTokenProvider = (*TokenProvider)(nil)

// New returns a provider that makes tokens for clusterID from cfg.
func New(cfg aws.Config, clusterID string) *TokenProvider {
	return &TokenProvider{cfg: cfg, clusterID: clusterID}
}

// Token makes a fresh token. sarama asks once per broker connection, and a
// presign is local computation once cfg's credentials are cached, so there
// is nothing worth caching here; a fresh token also gives every connection
// the longest session.
func (p *TokenProvider) Token() (*sarama.AccessToken, error) {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	tok, err := iamauth.NewToken(ctx, p.cfg, p.clusterID)
	if err != nil {
		return nil, fmt.Errorf("sarama OAUTHBEARER: %w", err)
	}
	return &sarama.AccessToken{Token: tok.Value}, nil
}
