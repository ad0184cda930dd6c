// Package scram is the server side of SASL SCRAM-SHA-256 and SCRAM-SHA-512
// (RFC 5802, RFC 7677, Kafka's KIP-84) and the salted credentials it checks
// against.
//
// # Credentials
//
// A Credential is what the metadata log stores per (user, mechanism):
// mechanism, salt, iteration count, StoredKey and ServerKey. The password
// is never kept: NewCredential derives SaltedPassword with PBKDF2 and keeps
// only StoredKey = H(HMAC(SaltedPassword, "Client Key")) and ServerKey =
// HMAC(SaltedPassword, "Server Key"), enough to check a client's proof and
// to prove the server knows the credential, not enough to log in.
// AlterUserScramCredentials (KIP-554) sends the salt and SaltedPassword
// instead of the password; CredentialFromSaltedPassword takes those.
// MarshalBinary/UnmarshalBinary are the record's versioned encoding.
//
// # The exchange
//
// NewServer(mechanism, store) is a sasl.Mechanism. Its session reads the
// client-first message (GS2 header "n" or "y", an optional authzid that
// must equal the user, the username with RFC 5802's =2C and =3D escapes,
// the client nonce, optional extensions including Kafka's tokenauth),
// answers server-first (combined nonce, salt, iterations), checks the
// client-final message (channel binding c= equal to the GS2 header in
// base64, "biws" for "n,,", the combined nonce, the proof compared in
// constant time) and answers server-final (v=ServerSignature).
//
// An unknown user gets the same exchange as a known one, with a salt
// derived from the name and a per-server secret, and fails at the proof,
// so the wire never tells whether a user exists. The Go errors do:
// ErrUnknownUser, ErrBadProof, ErrMalformed and ErrUnsupported, for the
// broker's log; sasl.ClientMessage gives the wire message, the same for
// unknown users and bad passwords.
//
// Usernames are compared byte for byte after unescaping, as Kafka does: no
// SASLprep normalisation is applied, and names SASLprep prohibits (control
// characters, invalid UTF-8) are refused, so every accepted name is one
// SASLprep leaves unchanged when it is ASCII.
package scram

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"strings"

	"github.com/tributary/tributary/broker/security/sasl"
)

// Mechanism is a SCRAM hash. Its values are Kafka's wire codes in
// DescribeUserScramCredentials and AlterUserScramCredentials.
type Mechanism int8

// The SCRAM mechanisms Kafka defines.
const (
	SHA256 Mechanism = 1
	SHA512 Mechanism = 2
)

// Iteration bounds are Kafka's (ScramMechanism): RFC 7677 asks for at least
// 4096, and Kafka refuses more than 16384.
const (
	MinIterations     = 4096
	MaxIterations     = 16384
	DefaultIterations = 8192
	// SaltLen is the length of the salts NewCredential makes.
	SaltLen = 32
	// maxSaltLen bounds salts from AlterUserScramCredentials.
	maxSaltLen = 1024
)

// ParseMechanism reads "SCRAM-SHA-256" or "SCRAM-SHA-512".
func ParseMechanism(name string) (Mechanism, error) {
	switch name {
	case sasl.ScramSHA256:
		return SHA256, nil
	case sasl.ScramSHA512:
		return SHA512, nil
	}
	return 0, fmt.Errorf("unknown SCRAM mechanism %q (want %s or %s)", name, sasl.ScramSHA256, sasl.ScramSHA512)
}

// String is the SASL name, or "SCRAM-UNKNOWN(n)".
func (m Mechanism) String() string {
	switch m {
	case SHA256:
		return sasl.ScramSHA256
	case SHA512:
		return sasl.ScramSHA512
	}
	return fmt.Sprintf("SCRAM-UNKNOWN(%d)", int8(m))
}

// Valid reports whether m is SHA256 or SHA512.
func (m Mechanism) Valid() bool { return m == SHA256 || m == SHA512 }

func (m Mechanism) newHash() func() hash.Hash {
	if m == SHA512 {
		return sha512.New
	}
	return sha256.New
}

// Size is the length of the mechanism's keys and proofs.
func (m Mechanism) Size() int {
	if m == SHA512 {
		return sha512.Size
	}
	return sha256.Size
}

// Credential is one user's salted SCRAM credential for one mechanism.
type Credential struct {
	Mechanism  Mechanism
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

// String names the mechanism and iterations only: salt and keys stay out
// of logs.
func (c Credential) String() string {
	return fmt.Sprintf("scram.Credential{%s, %d iterations}", c.Mechanism, c.Iterations)
}

// NewCredential derives a credential from password with a fresh random
// salt.
func NewCredential(m Mechanism, password string, iterations int) (Credential, error) {
	if password == "" {
		return Credential{}, fmt.Errorf("SCRAM credential: the password is empty")
	}
	if err := checkParams(m, iterations); err != nil {
		return Credential{}, err
	}
	salt := make([]byte, SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return Credential{}, fmt.Errorf("SCRAM credential: reading random salt: %w", err)
	}
	salted, err := SaltedPassword(m, password, salt, iterations)
	if err != nil {
		return Credential{}, err
	}
	return CredentialFromSaltedPassword(m, salt, salted, iterations)
}

// SaltedPassword is RFC 5802's Hi(password, salt, i): PBKDF2 with the
// mechanism's HMAC. Clients of AlterUserScramCredentials compute it.
func SaltedPassword(m Mechanism, password string, salt []byte, iterations int) ([]byte, error) {
	if err := checkParams(m, iterations); err != nil {
		return nil, err
	}
	key, err := pbkdf2.Key(m.newHash(), password, salt, iterations, m.Size())
	if err != nil {
		return nil, fmt.Errorf("SCRAM credential: PBKDF2: %w", err)
	}
	return key, nil
}

// CredentialFromSaltedPassword builds a credential from what
// AlterUserScramCredentials carries: salt, SaltedPassword and iterations.
func CredentialFromSaltedPassword(m Mechanism, salt, saltedPassword []byte, iterations int) (Credential, error) {
	if err := checkParams(m, iterations); err != nil {
		return Credential{}, err
	}
	if len(salt) == 0 || len(salt) > maxSaltLen {
		return Credential{}, fmt.Errorf("SCRAM credential: salt of %d bytes, want 1-%d", len(salt), maxSaltLen)
	}
	if len(saltedPassword) != m.Size() {
		return Credential{}, fmt.Errorf("SCRAM credential: salted password of %d bytes, want %d for %s", len(saltedPassword), m.Size(), m)
	}
	clientKey := hmacOf(m, saltedPassword, []byte("Client Key"))
	h := m.newHash()()
	h.Write(clientKey)
	return Credential{
		Mechanism:  m,
		Salt:       append([]byte(nil), salt...),
		Iterations: iterations,
		StoredKey:  h.Sum(nil),
		ServerKey:  hmacOf(m, saltedPassword, []byte("Server Key")),
	}, nil
}

// Validate checks that c is a usable credential.
func (c Credential) Validate() error {
	if err := checkParams(c.Mechanism, c.Iterations); err != nil {
		return err
	}
	if len(c.Salt) == 0 || len(c.Salt) > maxSaltLen {
		return fmt.Errorf("SCRAM credential: salt of %d bytes, want 1-%d", len(c.Salt), maxSaltLen)
	}
	if len(c.StoredKey) != c.Mechanism.Size() || len(c.ServerKey) != c.Mechanism.Size() {
		return fmt.Errorf("SCRAM credential: keys of %d and %d bytes, want %d for %s", len(c.StoredKey), len(c.ServerKey), c.Mechanism.Size(), c.Mechanism)
	}
	return nil
}

func checkParams(m Mechanism, iterations int) error {
	if !m.Valid() {
		return fmt.Errorf("SCRAM credential: unknown mechanism %d", int8(m))
	}
	if iterations < MinIterations || iterations > MaxIterations {
		return fmt.Errorf("SCRAM credential: %d iterations, want %d-%d", iterations, MinIterations, MaxIterations)
	}
	return nil
}

func hmacOf(m Mechanism, key, msg []byte) []byte {
	mac := hmac.New(m.newHash(), key)
	mac.Write(msg)
	return mac.Sum(nil)
}

// ValidateUsername checks a SCRAM username as the broker stores it
// (unescaped): non-empty, valid UTF-8, no control characters.
func ValidateUsername(name string) error {
	if name == "" {
		return fmt.Errorf("the SCRAM username is empty")
	}
	if len(name) > maxUsernameLen {
		return fmt.Errorf("the SCRAM username is %d bytes, more than %d", len(name), maxUsernameLen)
	}
	if !isSASLprepSafe(name) {
		return fmt.Errorf("the SCRAM username %q has invalid UTF-8 or control characters", name)
	}
	return nil
}

const maxUsernameLen = 1024

func isSASLprepSafe(s string) bool {
	if !utf8Valid(s) {
		return false
	}
	return !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || (r >= 0x7f && r <= 0x9f) })
}
