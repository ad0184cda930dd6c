// Package kms emulates AWS KMS (awsJson1_1, X-Amz-Target: TrentService.<Operation>) for the
// local cloud, with real authenticated encryption.
//
// # Keys and ciphertexts
//
// Every key is symmetric (SYMMETRIC_DEFAULT): 256 bits of random key material per version,
// AES-256-GCM. Rotation (automatic when its date passes, or on demand) adds a version and
// keeps the old ones, so old ciphertexts still decrypt. A ciphertext blob carries a format
// byte, the key id, the material version, a random nonce and the GCM ciphertext and tag; the
// header and the canonical encryption context (pairs sorted by key, every string
// length-prefixed) are the GCM additional data. So Decrypt needs no KeyId, and a blob moved to
// another key or version, or decrypted with a missing, extra or different context, fails with
// InvalidCiphertextException, as in KMS. Key material is saved in the state directory
// (kms/kms.json), unlike real KMS: never put real secrets through the local cloud.
//
// # Authorization
//
// Account roots (the default test credentials) and in-process calls may do anything. For any
// other caller, an operation on a key is decided as KMS decides it, the key policy being the
// root of trust:
//   - an explicit Deny in the key policy refuses;
//   - a key policy statement whose principal is the caller (the session ARN or the role ARN of
//     an assumed-role session, or a user ARN) allows;
//   - a grant on the key whose grantee is the caller, listing the operation, and whose
//     EncryptionContextSubset/EncryptionContextEquals constraint the request's context meets,
//     allows;
//   - a key policy statement whose principal is the account (the default key policy's "Enable
//     IAM User Permissions") delegates to the caller's IAM identity policies, asked through the
//     server's Authorizer with the key ARN as resource and the condition keys
//     kms:EncryptionContext:<key>, kms:EncryptionContextKeys, kms:CallerAccount,
//     aws:PrincipalArn, aws:PrincipalAccount, aws:CurrentTime and aws:EpochTime;
//   - anything else is AccessDeniedException.
//
// An explicit Deny in the caller's identity policies refuses even what the key policy or a grant
// allows. Operations without a key (CreateKey, ListKeys, ListAliases without KeyId,
// GenerateRandom, ListRetirableGrants) are decided by identity policies alone.
//
// New key policies pass KMS's lockout safety check (they must let the caller call
// kms:PutKeyPolicy) unless BypassPolicyLockoutSafetyCheck is set, and must name a principal in
// every statement.
//
// # Seams
//
// Service implements awsapi.Service and awsapi.KeyResolver (ResolveKey for EC2 volume keys;
// DefaultEBSKey creates the AWS managed alias/aws/ebs key on first use).
package kms
