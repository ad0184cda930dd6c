package boot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/tributary/tributary/internal/bootconfig"
)

// KMSDecrypter is the one KMS call the agent makes; *kms.Client implements it.
type KMSDecrypter interface {
	Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error)
}

var _ KMSDecrypter = (*kms.Client)(nil)

// decryptSecrets opens the document's secrets envelope with KMS. The key id
// and the encryption context are passed exactly as the document carries
// them: KMS refuses a context that differs from the one used to encrypt, and
// the instance role's policy allows kms:Decrypt only under this node's
// context.
func decryptSecrets(ctx context.Context, client KMSDecrypter, env *bootconfig.Envelope) (*bootconfig.Secrets, error) {
	out, err := client.Decrypt(ctx, &kms.DecryptInput{
		CiphertextBlob:    env.Ciphertext,
		KeyId:             &env.KeyID,
		EncryptionContext: env.EncryptionContext,
	})
	if err != nil {
		return nil, explainDecryptError(err, env)
	}
	var s bootconfig.Secrets
	if err := json.Unmarshal(out.Plaintext, &s); err != nil {
		// Do not echo the plaintext: it is key material.
		return nil, permanentError{fmt.Errorf("the decrypted secrets are not a JSON secrets document (%d bytes): %w", len(out.Plaintext), jsonErrorWithoutValue(err))}
	}
	return &s, nil
}

// explainDecryptError turns KMS's error codes into what a person needs to do.
func explainDecryptError(err error, env *bootconfig.Envelope) error {
	ctxText := formatContext(env.EncryptionContext)
	var (
		badCipher *types.InvalidCiphertextException
		wrongKey  *types.IncorrectKeyException
		notFound  *types.NotFoundException
		disabled  *types.DisabledException
		badState  *types.KMSInvalidStateException
		apiErr    smithy.APIError
		code      string
	)
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	switch {
	case code == "AccessDeniedException": // KMS's model has no type for it; the code is stable
		return fmt.Errorf("KMS denied kms:Decrypt of the secrets with key %s under encryption context %s: "+
			"the instance role may not decrypt them; its policy must allow kms:Decrypt on that key with "+
			"kms:EncryptionContext conditions matching this cluster and node: %w", env.KeyID, ctxText, err)
	case errors.As(err, &badCipher):
		// KMS answers InvalidCiphertext both for damaged ciphertext and for
		// an encryption context that differs from the one used to encrypt.
		return fmt.Errorf("KMS could not decrypt the secrets under encryption context %s: the context does not match "+
			"the one they were encrypted with (or the ciphertext is damaged); the provider must encrypt with "+
			"exactly the document's encryption_context: %w", ctxText, err)
	case errors.As(err, &wrongKey):
		return fmt.Errorf("the secrets were not encrypted with KMS key %s (the document's kms_key_id): %w", env.KeyID, err)
	case errors.As(err, &notFound):
		return fmt.Errorf("KMS key %s does not exist in this account and region: %w", env.KeyID, err)
	case errors.As(err, &disabled) || errors.As(err, &badState):
		return fmt.Errorf("KMS key %s is disabled or pending deletion; enable it to boot the broker: %w", env.KeyID, err)
	default:
		return fmt.Errorf("decrypting the secrets with KMS key %s under encryption context %s: %w", env.KeyID, ctxText, err)
	}
}

func formatContext(c map[string]string) string {
	parts := make([]string, 0, len(c))
	for _, k := range slices.Sorted(maps.Keys(c)) {
		parts = append(parts, fmt.Sprintf("%s=%s", k, c[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// jsonErrorWithoutValue keeps a JSON error's position and type but never the
// offending value, which could be part of a key.
func jsonErrorWithoutValue(err error) error {
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Errorf("invalid JSON at byte %d", syntax.Offset)
	case errors.As(err, &typeErr):
		return fmt.Errorf("field %s must be %s", typeErr.Field, typeErr.Type)
	default:
		return errors.New("invalid JSON")
	}
}
