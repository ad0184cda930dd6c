// Package awsapi is the local cloud's AWS front door: one HTTP endpoint that verifies AWS
// Signature Version 4 (header and presigned query), finds the emulated service by the
// credential scope's service name, finds the operation by protocol, and renders AWS errors in
// the protocol the client speaks.
//
// # Service packages (kms, sts, iam, cloudwatch, ec2)
//
// A service is a package under internal/localcloud/ with a constructor of this shape, called
// once by localcloud.Start with a per-service state directory:
//
//	func New(env awsapi.Env) (*Service, error)   // STS may take a second argument: what it needs from IAM
//	func (s *Service) Handle(ctx context.Context, req *awsapi.Request) (*awsapi.Response, error)
//	func (s *Service) Close() error               // optional (io.Closer): flush state
//
// The wiring registers it under its SigV4 scope name: "ec2", "autoscaling", "kms", "sts", "iam",
// "monitoring" (CloudWatch), "logs" (CloudWatch Logs), "s3", "firehose". Interfaces that services implement for each other, installed by the wiring:
//   - iam.Service implements Authorizer (installed with Server.SetAuthorizer) and
//     InstanceProfileResolver (used by EC2 RunInstances and the instance metadata service).
//   - s3.Service implements ObjectStore (Firehose delivers its streams' objects through it,
//     having authorized the write as the stream's role with the Authorizer).
//   - kms.Service implements KeyResolver (used by EC2 CreateVolume / RunInstances encryption).
//   - STS and the instance metadata service issue temporary credentials with
//     Env.Credentials.IssueSession(AssumedRoleIdentity(...), ttl, source); the server accepts them
//     (session token required) until they expire, then answers ExpiredToken.
//
// Inside Handle:
//   - req.Action is the operation ("Decrypt"); req.Protocol says how to read req.Body:
//     ProtocolJSON (X-Amz-Target; use req.DecodeJSON), ProtocolQuery / ProtocolEC2 (form or query
//     string; read req.Params), ProtocolRESTXML (S3, path-style: the server names the operation
//     from the method, path and sub-resource query, req.Params holds the query; S3's
//     canonical URI is escaped once, not twice), ProtocolRPCv2CBOR (CloudWatch from newer SDKs, path
//     /service/GraniteServiceVersion20100801/operation/<Op>; decode req.Body with
//     github.com/aws/smithy-go/encoding/cbor and answer with CBORResponse).
//   - req.Caller is the verified identity (account, ARN, principal); req.Region the scope's region.
//   - Call req.Authorize(ctx, "kms:Decrypt", keyARN, conditions) before acting for a caller; it
//     returns nil or the access-denied error in the service's own code (AccessDeniedException,
//     UnauthorizedOperation, AccessDenied). Root callers (test/test) are always allowed. A
//     service whose resource policy already allows the caller (a KMS key policy or grant) calls
//     req.CheckExplicitDeny instead: an explicit Deny in an identity policy still refuses.
//   - Answer with JSONResponse, QueryResponse (awsQuery envelope with <ActionResult> and
//     <ResponseMetadata>) or CBORResponse; return an *Error (Errorf) for AWS errors. The server
//     adds x-amzn-RequestId and renders errors: <ErrorResponse> for query, S3's <Error> (no body for HEAD), EC2's
//     <Response><Errors>, JSON {"__type","message"}, CBOR with x-amzn-query-error. CloudWatch
//     ("monitoring") is awsQueryCompatible: its JSON and CBOR errors carry the awsQuery code in
//     x-amzn-query-error, and its authentication and access-denied errors use the query names
//     (SignatureDoesNotMatch, AccessDenied).
//
// Authentication failures follow AWS: unknown key -> InvalidClientTokenId (query),
// UnrecognizedClientException (JSON), AuthFailure (EC2); bad signature -> SignatureDoesNotMatch /
// InvalidSignatureException; malformed -> IncompleteSignature; no signature ->
// MissingAuthenticationToken; expired session -> ExpiredToken; X-Amz-Date more than 15 minutes
// from now -> "Signature expired" (RequestExpired for EC2).
package awsapi
