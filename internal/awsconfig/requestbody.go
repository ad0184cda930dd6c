package awsconfig

import (
	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/tributary/tributary/internal/awsbody"
)

// plainBodyClient is the client every service client New builds sends
// through: awsbody.Client says why.
type plainBodyClient = awsbody.Client

// plainBodies wraps a service client's HTTP client in plainBodyClient, once.
func plainBodies(c aws.HTTPClient) aws.HTTPClient { return awsbody.Wrap(c) }
