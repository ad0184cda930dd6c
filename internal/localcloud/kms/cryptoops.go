package kms

import (
	"crypto/rand"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

const symmetricDefault = "SYMMETRIC_DEFAULT"

type encryptInput struct {
	KeyId               string
	Plaintext           []byte
	EncryptionContext   map[string]string
	GrantTokens         []string
	EncryptionAlgorithm string
}

type encryptOutput struct {
	CiphertextBlob      []byte
	KeyId               string
	EncryptionAlgorithm string
}

func checkAlgorithm(alg string) error {
	if alg != "" && alg != symmetricDefault {
		return awsapi.Errorf("InvalidKeyUsageException", "the local cloud's symmetric keys support only the SYMMETRIC_DEFAULT algorithm, got %s", alg)
	}
	return nil
}

// encryptLocked encrypts with the key's current material after the authorization check.
func (s *Service) encryptLocked(k *key, plaintext []byte, encCtx map[string]string) ([]byte, error) {
	if err := s.usableLocked(k); err != nil {
		return nil, err
	}
	version := uint32(len(k.Material) - 1)
	return sealBlob(k.Material[version], blobHeader{keyID: k.ID, version: version}, plaintext, encCtx)
}

func (s *Service) encrypt(c *call, in *encryptInput) (*encryptOutput, error) {
	if len(in.Plaintext) == 0 || len(in.Plaintext) > 4096 {
		return nil, validationError("plaintext", "Member must have length between 1 and 4096")
	}
	if err := checkAlgorithm(in.EncryptionAlgorithm); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.lookupLocked(in.KeyId)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeLocked(c, "Encrypt", k, in.EncryptionContext); err != nil {
		return nil, err
	}
	blob, err := s.encryptLocked(k, in.Plaintext, in.EncryptionContext)
	if err != nil {
		return nil, err
	}
	return &encryptOutput{CiphertextBlob: blob, KeyId: s.keyARN(k), EncryptionAlgorithm: symmetricDefault}, nil
}

type decryptInput struct {
	CiphertextBlob      []byte
	EncryptionContext   map[string]string
	GrantTokens         []string
	KeyId               string
	EncryptionAlgorithm string
}

type decryptOutput struct {
	KeyId               string
	Plaintext           []byte
	EncryptionAlgorithm string
}

// decryptLocked finds the key a blob names (checking it against an optional KeyId), authorizes
// operation on it and decrypts.
func (s *Service) decryptLocked(c *call, operation string, blob []byte, keyID string, encCtx map[string]string) (*key, []byte, error) {
	if len(blob) == 0 || len(blob) > 6144 {
		return nil, nil, validationError("ciphertextBlob", "Member must have length between 1 and 6144")
	}
	h, _, err := parseBlobHeader(blob)
	if err != nil {
		return nil, nil, awsapi.Errorf("InvalidCiphertextException", "The ciphertext is invalid or was not produced by KMS.")
	}
	k, ok := s.keys[h.keyID]
	if ok {
		// Through lookupLocked, so due deletions and rotations apply.
		k, err = s.lookupLocked(h.keyID)
	}
	if !ok || err != nil {
		return nil, nil, awsapi.Errorf("InvalidCiphertextException", "The ciphertext refers to a key that does not exist.")
	}
	if keyID != "" {
		want, err := s.lookupLocked(keyID)
		if err != nil {
			return nil, nil, err
		}
		if want.ID != k.ID {
			return nil, nil, awsapi.Errorf("IncorrectKeyException", "The key ID in the request does not identify a KMS key that can perform this operation.")
		}
	}
	if err := s.authorizeLocked(c, operation, k, encCtx); err != nil {
		return nil, nil, err
	}
	if err := s.usableLocked(k); err != nil {
		return nil, nil, err
	}
	if int(h.version) >= len(k.Material) {
		return nil, nil, awsapi.Errorf("InvalidCiphertextException", "The ciphertext is invalid or was not produced by this key.")
	}
	plaintext, err := openBlob(k.Material[h.version], blob, encCtx)
	if err != nil {
		// A wrong or missing encryption context fails GCM authentication, as in KMS.
		return nil, nil, awsapi.Errorf("InvalidCiphertextException", "The ciphertext or encryption context is invalid.")
	}
	return k, plaintext, nil
}

func (s *Service) decrypt(c *call, in *decryptInput) (*decryptOutput, error) {
	if err := checkAlgorithm(in.EncryptionAlgorithm); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, plaintext, err := s.decryptLocked(c, "Decrypt", in.CiphertextBlob, in.KeyId, in.EncryptionContext)
	if err != nil {
		return nil, err
	}
	return &decryptOutput{KeyId: s.keyARN(k), Plaintext: plaintext, EncryptionAlgorithm: symmetricDefault}, nil
}

type generateDataKeyInput struct {
	KeyId             string
	KeySpec           string
	NumberOfBytes     int32
	EncryptionContext map[string]string
	GrantTokens       []string
}

type generateDataKeyOutput struct {
	CiphertextBlob []byte
	Plaintext      []byte `json:",omitempty"`
	KeyId          string
}

func dataKeySize(in *generateDataKeyInput) (int, error) {
	switch {
	case in.KeySpec != "" && in.NumberOfBytes != 0:
		return 0, awsapi.Errorf("ValidationException", "Please specify either KeySpec or NumberOfBytes, but not both.")
	case in.KeySpec == "AES_256":
		return 32, nil
	case in.KeySpec == "AES_128":
		return 16, nil
	case in.KeySpec != "":
		return 0, validationError("keySpec", "Member must satisfy enum value set: [AES_256, AES_128]")
	case in.NumberOfBytes == 0:
		return 0, awsapi.Errorf("ValidationException", "Please specify either KeySpec or NumberOfBytes.")
	case in.NumberOfBytes < 1 || in.NumberOfBytes > 1024:
		return 0, validationError("numberOfBytes", "Member must have value between 1 and 1024")
	}
	return int(in.NumberOfBytes), nil
}

func (s *Service) generateDataKey(c *call, in *generateDataKeyInput, operation string) (*generateDataKeyOutput, error) {
	n, err := dataKeySize(in)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.lookupLocked(in.KeyId)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeLocked(c, operation, k, in.EncryptionContext); err != nil {
		return nil, err
	}
	plaintext := make([]byte, n)
	_, _ = rand.Read(plaintext)
	blob, err := s.encryptLocked(k, plaintext, in.EncryptionContext)
	if err != nil {
		return nil, err
	}
	out := &generateDataKeyOutput{CiphertextBlob: blob, KeyId: s.keyARN(k)}
	if operation == "GenerateDataKey" {
		out.Plaintext = plaintext
	}
	return out, nil
}

type reEncryptInput struct {
	CiphertextBlob                 []byte
	SourceEncryptionContext        map[string]string
	SourceKeyId                    string
	DestinationKeyId               string
	DestinationEncryptionContext   map[string]string
	SourceEncryptionAlgorithm      string
	DestinationEncryptionAlgorithm string
	GrantTokens                    []string
}

type reEncryptOutput struct {
	CiphertextBlob                 []byte
	SourceKeyId                    string
	KeyId                          string
	SourceEncryptionAlgorithm      string
	DestinationEncryptionAlgorithm string
}

func (s *Service) reEncrypt(c *call, in *reEncryptInput) (*reEncryptOutput, error) {
	if err := checkAlgorithm(in.SourceEncryptionAlgorithm); err != nil {
		return nil, err
	}
	if err := checkAlgorithm(in.DestinationEncryptionAlgorithm); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	src, plaintext, err := s.decryptLocked(c, "ReEncryptFrom", in.CiphertextBlob, in.SourceKeyId, in.SourceEncryptionContext)
	if err != nil {
		return nil, err
	}
	dst, err := s.lookupLocked(in.DestinationKeyId)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeLocked(c, "ReEncryptTo", dst, in.DestinationEncryptionContext); err != nil {
		return nil, err
	}
	blob, err := s.encryptLocked(dst, plaintext, in.DestinationEncryptionContext)
	if err != nil {
		return nil, err
	}
	return &reEncryptOutput{
		CiphertextBlob: blob, SourceKeyId: s.keyARN(src), KeyId: s.keyARN(dst),
		SourceEncryptionAlgorithm: symmetricDefault, DestinationEncryptionAlgorithm: symmetricDefault,
	}, nil
}

type generateRandomInput struct {
	NumberOfBytes int32
}

type generateRandomOutput struct {
	Plaintext []byte
}

func (s *Service) generateRandom(c *call, in *generateRandomInput) (*generateRandomOutput, error) {
	if in.NumberOfBytes < 1 || in.NumberOfBytes > 1024 {
		return nil, validationError("numberOfBytes", "Member must have value between 1 and 1024")
	}
	s.mu.Lock()
	err := s.authorizeLocked(c, "GenerateRandom", nil, nil)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out := make([]byte, in.NumberOfBytes)
	_, _ = rand.Read(out)
	return &generateRandomOutput{Plaintext: out}, nil
}
