package kms

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// Ciphertext blob layout (the local cloud's own format; AWS's is opaque too):
//
//	byte 0      format version (1)
//	byte 1      length n of the key id
//	bytes 2..   key id (n bytes, the key's UUID)
//	4 bytes     material version (big endian), so rotated keys still decrypt old blobs
//	12 bytes    GCM nonce
//	rest        AES-256-GCM ciphertext and 16-byte tag
//
// The header (everything before the nonce) and the canonical encryption context are the GCM
// additional data, so a blob moved to another key, version or context fails authentication.
const (
	blobFormat   = 1
	nonceSize    = 12
	materialSize = 32 // AES-256
)

var errBadCiphertext = errors.New("ciphertext is malformed or was not produced by this key")

type blobHeader struct {
	keyID   string
	version uint32
}

func newMaterial() []byte {
	m := make([]byte, materialSize)
	_, _ = rand.Read(m) // crypto/rand.Read never fails (Go 1.24+)
	return m
}

func sealBlob(material []byte, h blobHeader, plaintext []byte, encCtx map[string]string) ([]byte, error) {
	gcm, err := newGCM(material)
	if err != nil {
		return nil, err
	}
	header := h.encode()
	nonce := make([]byte, nonceSize)
	_, _ = rand.Read(nonce)
	out := make([]byte, 0, len(header)+nonceSize+len(plaintext)+gcm.Overhead())
	out = append(out, header...)
	out = append(out, nonce...)
	return gcm.Seal(out, nonce, plaintext, additionalData(header, encCtx)), nil
}

// parseBlobHeader reads the key id and material version from a blob without decrypting it.
func parseBlobHeader(blob []byte) (blobHeader, int, error) {
	if len(blob) < 2 || blob[0] != blobFormat {
		return blobHeader{}, 0, errBadCiphertext
	}
	n := int(blob[1])
	end := 2 + n + 4
	if n == 0 || len(blob) < end+nonceSize+16 {
		return blobHeader{}, 0, errBadCiphertext
	}
	return blobHeader{keyID: string(blob[2 : 2+n]), version: binary.BigEndian.Uint32(blob[2+n : end])}, end, nil
}

func openBlob(material []byte, blob []byte, encCtx map[string]string) ([]byte, error) {
	_, headerLen, err := parseBlobHeader(blob)
	if err != nil {
		return nil, err
	}
	gcm, err := newGCM(material)
	if err != nil {
		return nil, err
	}
	header := blob[:headerLen]
	nonce := blob[headerLen : headerLen+nonceSize]
	plaintext, err := gcm.Open(nil, nonce, blob[headerLen+nonceSize:], additionalData(header, encCtx))
	if err != nil {
		return nil, errBadCiphertext
	}
	return plaintext, nil
}

func (h blobHeader) encode() []byte {
	out := make([]byte, 0, 2+len(h.keyID)+4)
	out = append(out, blobFormat, byte(len(h.keyID)))
	out = append(out, h.keyID...)
	return binary.BigEndian.AppendUint32(out, h.version)
}

func newGCM(material []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(material)
	if err != nil {
		return nil, fmt.Errorf("creating AES cipher: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("creating GCM: %w", err)
	}
	return gcm, nil
}

// additionalData binds the blob header and the encryption context. The context is canonical:
// pairs sorted by key, every string length-prefixed, so no two contexts serialise alike.
func additionalData(header []byte, encCtx map[string]string) []byte {
	keys := make([]string, 0, len(encCtx))
	for k := range encCtx {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := append([]byte(nil), header...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(keys)))
	for _, k := range keys {
		out = binary.BigEndian.AppendUint32(out, uint32(len(k)))
		out = append(out, k...)
		v := encCtx[k]
		out = binary.BigEndian.AppendUint32(out, uint32(len(v)))
		out = append(out, v...)
	}
	return out
}
