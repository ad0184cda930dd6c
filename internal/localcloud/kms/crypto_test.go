package kms

import (
	"bytes"
	"testing"
)

// TestBlobAuthenticatesEveryByte flips each byte of a ciphertext blob in turn: every change,
// in the header (key id, version), the nonce or the ciphertext, must fail to open.
func TestBlobAuthenticatesEveryByte(t *testing.T) {
	material := newMaterial()
	encCtx := map[string]string{"cluster": "c1"}
	blob, err := sealBlob(material, blobHeader{keyID: "1234abcd-12ab-34cd-56ef-1234567890ab", version: 3}, []byte("secret"), encCtx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := openBlob(material, blob, encCtx)
	if err != nil || !bytes.Equal(got, []byte("secret")) {
		t.Fatalf("openBlob = %q, %v", got, err)
	}
	h, _, err := parseBlobHeader(blob)
	if err != nil || h.keyID != "1234abcd-12ab-34cd-56ef-1234567890ab" || h.version != 3 {
		t.Fatalf("header %+v, %v", h, err)
	}
	for i := range blob {
		tampered := bytes.Clone(blob)
		tampered[i] ^= 0x01
		if _, err := openBlob(material, tampered, encCtx); err == nil {
			t.Fatalf("a blob with byte %d flipped opened", i)
		}
	}
	for _, cut := range []int{0, 1, 2, 10, len(blob) - 1} {
		if _, err := openBlob(material, blob[:cut], encCtx); err == nil {
			t.Fatalf("a blob cut to %d bytes opened", cut)
		}
	}
	if _, err := openBlob(newMaterial(), blob, encCtx); err == nil {
		t.Fatal("a blob opened with other key material")
	}
}

// TestContextCanonical checks that distinct contexts never share additional data, even when
// their concatenations would.
func TestContextCanonical(t *testing.T) {
	contexts := []map[string]string{
		nil,
		{"a": "bc"},
		{"ab": "c"},
		{"a": "b", "c": ""},
		{"a": "", "bc": ""},
	}
	seen := map[string]int{}
	for i, c := range contexts {
		aad := string(additionalData([]byte("h"), c))
		if j, ok := seen[aad]; ok && !(len(contexts[j]) == 0 && len(c) == 0) {
			t.Fatalf("contexts %v and %v share additional data", contexts[j], c)
		}
		seen[aad] = i
	}
	if !bytes.Equal(additionalData(nil, map[string]string{"x": "1", "y": "2"}), additionalData(nil, map[string]string{"y": "2", "x": "1"})) {
		t.Fatal("additional data depends on map order")
	}
}
