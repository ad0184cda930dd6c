package kms_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
	"github.com/tributary/tributary/internal/localcloud/awsapitest"
	"github.com/tributary/tributary/internal/localcloud/kms"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type harness struct {
	svc    *kms.Service
	srv    *awsapi.Server
	url    string
	client *awskms.Client
	clock  *clock
	dir    string
}

func newHarness(t *testing.T, dir string) *harness {
	t.Helper()
	creds, err := awsapi.NewCredentialStore("")
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now()}
	svc, err := kms.New(awsapi.Env{Account: awsapi.DefaultAccount, Region: "us-east-1", StateDir: dir, Credentials: creds, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := awsapi.NewServer(awsapi.ServerOptions{Credentials: creds, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv.Register("kms", svc)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	h := &harness{svc: svc, srv: srv, url: hs.URL, clock: clk, dir: dir}
	h.client = h.clientFor("test", "test", "")
	return h
}

func (h *harness) clientFor(key, secret, token string) *awskms.Client {
	return awskms.NewFromConfig(aws.Config{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(h.url),
		Credentials:  credentials.NewStaticCredentialsProvider(key, secret, token),
		Retryer:      func() aws.Retryer { return aws.NopRetryer{} },
	})
}

// roleClient returns a client signing as a session of the role with the given name.
func (h *harness) roleClient(t *testing.T, role string) (*awskms.Client, string) {
	t.Helper()
	roleARN := "arn:aws:iam::000000000000:role/" + role
	c, err := h.srv.Credentials().IssueSession(awsapi.AssumedRoleIdentity(awsapi.DefaultAccount, roleARN, "AROATEST"+role, "s1"), time.Hour, "test")
	if err != nil {
		t.Fatal(err)
	}
	return h.clientFor(c.AccessKeyID, c.SecretAccessKey, c.SessionToken), roleARN
}

func createKey(t *testing.T, c *awskms.Client, in *awskms.CreateKeyInput) *types.KeyMetadata {
	t.Helper()
	if in == nil {
		in = &awskms.CreateKeyInput{}
	}
	out, err := c.CreateKey(context.Background(), in)
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	return out.KeyMetadata
}

func TestEncryptDecryptWithContext(t *testing.T) {
	h := newHarness(t, "")
	ctx := context.Background()
	md := createKey(t, h.client, &awskms.CreateKeyInput{Description: aws.String("cluster key"),
		Tags: []types.Tag{{TagKey: aws.String("team"), TagValue: aws.String("data")}}})
	if md.KeyState != types.KeyStateEnabled || md.KeySpec != types.KeySpecSymmetricDefault || !md.Enabled {
		t.Fatalf("unexpected metadata %+v", md)
	}
	encCtx := map[string]string{"cluster": "prod", "node": "1"}
	enc, err := h.client.Encrypt(ctx, &awskms.EncryptInput{KeyId: md.KeyId, Plaintext: []byte("secret"), EncryptionContext: encCtx})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(enc.KeyId) != aws.ToString(md.Arn) {
		t.Fatalf("Encrypt KeyId %s, want %s", aws.ToString(enc.KeyId), aws.ToString(md.Arn))
	}
	// KeyId is optional: the blob names its key.
	dec, err := h.client.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: encCtx})
	if err != nil {
		t.Fatal(err)
	}
	if string(dec.Plaintext) != "secret" || aws.ToString(dec.KeyId) != aws.ToString(md.Arn) {
		t.Fatalf("Decrypt = %q %s", dec.Plaintext, aws.ToString(dec.KeyId))
	}

	tampered := bytes.Clone(enc.CiphertextBlob)
	tampered[len(tampered)-1] ^= 1
	bad := []struct {
		name string
		in   awskms.DecryptInput
		code string
	}{
		{"wrong context", awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: map[string]string{"cluster": "dev", "node": "1"}}, "InvalidCiphertextException"},
		{"missing context", awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}, "InvalidCiphertextException"},
		{"extra context", awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: map[string]string{"cluster": "prod", "node": "1", "x": "y"}}, "InvalidCiphertextException"},
		{"tampered blob", awskms.DecryptInput{CiphertextBlob: tampered, EncryptionContext: encCtx}, "InvalidCiphertextException"},
		{"garbage", awskms.DecryptInput{CiphertextBlob: []byte("not a ciphertext")}, "InvalidCiphertextException"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.client.Decrypt(ctx, &tt.in)
			if got := awsapitest.ErrorCode(t, err); got != tt.code {
				t.Fatalf("code %s, want %s (%v)", got, tt.code, err)
			}
		})
	}

	other := createKey(t, h.client, nil)
	_, err = h.client.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: encCtx, KeyId: other.KeyId})
	if got := awsapitest.ErrorCode(t, err); got != "IncorrectKeyException" {
		t.Fatalf("decrypt naming another key: %s", got)
	}
}

func TestAliasesAsKeyID(t *testing.T) {
	h := newHarness(t, "")
	ctx := context.Background()
	k1 := createKey(t, h.client, nil)
	k2 := createKey(t, h.client, nil)
	if _, err := h.client.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/cluster"), TargetKeyId: k1.KeyId}); err != nil {
		t.Fatal(err)
	}
	_, err := h.client.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/cluster"), TargetKeyId: k2.KeyId})
	if got := awsapitest.ErrorCode(t, err); got != "AlreadyExistsException" {
		t.Fatalf("duplicate alias: %s", got)
	}
	_, err = h.client.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/aws/mine"), TargetKeyId: k2.KeyId})
	if got := awsapitest.ErrorCode(t, err); got != "NotAuthorizedException" {
		t.Fatalf("reserved alias: %s", got)
	}
	for _, ref := range []string{"alias/cluster", "arn:aws:kms:us-east-1:000000000000:alias/cluster", aws.ToString(k1.Arn), aws.ToString(k1.KeyId)} {
		out, err := h.client.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(ref)})
		if err != nil {
			t.Fatalf("DescribeKey(%s): %v", ref, err)
		}
		if aws.ToString(out.KeyMetadata.KeyId) != aws.ToString(k1.KeyId) {
			t.Fatalf("DescribeKey(%s) = %s", ref, aws.ToString(out.KeyMetadata.KeyId))
		}
	}
	enc, err := h.client.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String("alias/cluster"), Plaintext: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.UpdateAlias(ctx, &awskms.UpdateAliasInput{AliasName: aws.String("alias/cluster"), TargetKeyId: k2.KeyId}); err != nil {
		t.Fatal(err)
	}
	// The old blob still decrypts with its own key, but naming the alias (now k2) is refused.
	if _, err := h.client.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob}); err != nil {
		t.Fatal(err)
	}
	_, err = h.client.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, KeyId: aws.String("alias/cluster")})
	if got := awsapitest.ErrorCode(t, err); got != "IncorrectKeyException" {
		t.Fatalf("decrypt via moved alias: %s", got)
	}
	list, err := h.client.ListAliases(ctx, &awskms.ListAliasesInput{KeyId: k2.KeyId})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Aliases) != 1 || aws.ToString(list.Aliases[0].AliasName) != "alias/cluster" {
		t.Fatalf("ListAliases = %+v", list.Aliases)
	}
	if _, err := h.client.DeleteAlias(ctx, &awskms.DeleteAliasInput{AliasName: aws.String("alias/cluster")}); err != nil {
		t.Fatal(err)
	}
	_, err = h.client.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String("alias/cluster")})
	if got := awsapitest.ErrorCode(t, err); got != "NotFoundException" {
		t.Fatalf("deleted alias: %s", got)
	}
}

func TestKeyStates(t *testing.T) {
	h := newHarness(t, "")
	ctx := context.Background()
	k := createKey(t, h.client, nil)
	enc, err := h.client.Encrypt(ctx, &awskms.EncryptInput{KeyId: k.KeyId, Plaintext: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: k.KeyId}); err != nil {
		t.Fatal(err)
	}
	_, err = h.client.Encrypt(ctx, &awskms.EncryptInput{KeyId: k.KeyId, Plaintext: []byte("x")})
	if got := awsapitest.ErrorCode(t, err); got != "DisabledException" {
		t.Fatalf("encrypt with disabled key: %s", got)
	}
	_, err = h.client.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	if got := awsapitest.ErrorCode(t, err); got != "DisabledException" {
		t.Fatalf("decrypt with disabled key: %s", got)
	}
	if _, err := h.client.EnableKey(ctx, &awskms.EnableKeyInput{KeyId: k.KeyId}); err != nil {
		t.Fatal(err)
	}

	_, err = h.client.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: k.KeyId, PendingWindowInDays: aws.Int32(3)})
	if got := awsapitest.ErrorCode(t, err); got != "ValidationException" {
		t.Fatalf("3-day window: %s", got)
	}
	del, err := h.client.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: k.KeyId, PendingWindowInDays: aws.Int32(7)})
	if err != nil {
		t.Fatal(err)
	}
	if del.KeyState != types.KeyStatePendingDeletion || aws.ToInt32(del.PendingWindowInDays) != 7 {
		t.Fatalf("ScheduleKeyDeletion = %+v", del)
	}
	for name, call := range map[string]func() error{
		"encrypt": func() error {
			_, err := h.client.Encrypt(ctx, &awskms.EncryptInput{KeyId: k.KeyId, Plaintext: []byte("x")})
			return err
		},
		"decrypt": func() error {
			_, err := h.client.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
			return err
		},
		"enable": func() error {
			_, err := h.client.EnableKey(ctx, &awskms.EnableKeyInput{KeyId: k.KeyId})
			return err
		},
	} {
		if got := awsapitest.ErrorCode(t, call()); got != "KMSInvalidStateException" {
			t.Fatalf("%s pending deletion: %s", name, got)
		}
	}
	if _, err := h.client.CancelKeyDeletion(ctx, &awskms.CancelKeyDeletionInput{KeyId: k.KeyId}); err != nil {
		t.Fatal(err)
	}
	d, err := h.client.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: k.KeyId})
	if err != nil {
		t.Fatal(err)
	}
	if d.KeyMetadata.KeyState != types.KeyStateDisabled {
		t.Fatalf("after CancelKeyDeletion: %s, want Disabled", d.KeyMetadata.KeyState)
	}

	// Once the window has passed, the key is gone.
	if _, err := h.client.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: k.KeyId, PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(7*24*time.Hour + time.Second)
	_, err = h.client.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: k.KeyId})
	if got := awsapitest.ErrorCode(t, err); got != "NotFoundException" {
		t.Fatalf("after the deletion date: %s", got)
	}
	if _, err := h.svc.ResolveKey(ctx, "", "", aws.ToString(k.KeyId)); !errors.Is(err, awsapi.ErrNotFound) {
		t.Fatalf("ResolveKey of a deleted key: %v", err)
	}
}

func TestRotationKeepsOldMaterial(t *testing.T) {
	h := newHarness(t, "")
	ctx := context.Background()
	k := createKey(t, h.client, nil)
	before, err := h.client.Encrypt(ctx, &awskms.EncryptInput{KeyId: k.KeyId, Plaintext: []byte("before")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.EnableKeyRotation(ctx, &awskms.EnableKeyRotationInput{KeyId: k.KeyId, RotationPeriodInDays: aws.Int32(90)}); err != nil {
		t.Fatal(err)
	}
	st, err := h.client.GetKeyRotationStatus(ctx, &awskms.GetKeyRotationStatusInput{KeyId: k.KeyId})
	if err != nil {
		t.Fatal(err)
	}
	if !st.KeyRotationEnabled || aws.ToInt32(st.RotationPeriodInDays) != 90 || st.NextRotationDate == nil {
		t.Fatalf("rotation status %+v", st)
	}
	if _, err := h.client.RotateKeyOnDemand(ctx, &awskms.RotateKeyOnDemandInput{KeyId: k.KeyId}); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(91 * 24 * time.Hour) // the automatic rotation is due
	after, err := h.client.Encrypt(ctx, &awskms.EncryptInput{KeyId: k.KeyId, Plaintext: []byte("after")})
	if err != nil {
		t.Fatal(err)
	}
	rot, err := h.client.ListKeyRotations(ctx, &awskms.ListKeyRotationsInput{KeyId: k.KeyId})
	if err != nil {
		t.Fatal(err)
	}
	if len(rot.Rotations) != 2 || rot.Rotations[0].RotationType != types.RotationTypeOnDemand || rot.Rotations[1].RotationType != types.RotationTypeAutomatic {
		t.Fatalf("rotations %+v", rot.Rotations)
	}
	for _, blob := range [][]byte{before.CiphertextBlob, after.CiphertextBlob} {
		if _, err := h.client.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: blob}); err != nil {
			t.Fatalf("decrypt after rotation: %v", err)
		}
	}
	if _, err := h.client.DisableKeyRotation(ctx, &awskms.DisableKeyRotationInput{KeyId: k.KeyId}); err != nil {
		t.Fatal(err)
	}
}

func TestDataKeysAndReEncrypt(t *testing.T) {
	h := newHarness(t, "")
	ctx := context.Background()
	k1 := createKey(t, h.client, nil)
	k2 := createKey(t, h.client, nil)
	encCtx := map[string]string{"purpose": "volume"}
	dk, err := h.client.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: k1.KeyId, KeySpec: types.DataKeySpecAes256, EncryptionContext: encCtx})
	if err != nil {
		t.Fatal(err)
	}
	if len(dk.Plaintext) != 32 {
		t.Fatalf("data key of %d bytes", len(dk.Plaintext))
	}
	dec, err := h.client.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: encCtx})
	if err != nil || !bytes.Equal(dec.Plaintext, dk.Plaintext) {
		t.Fatalf("decrypting the data key: %v", err)
	}
	nop, err := h.client.GenerateDataKeyWithoutPlaintext(ctx, &awskms.GenerateDataKeyWithoutPlaintextInput{KeyId: k1.KeyId, NumberOfBytes: aws.Int32(16)})
	if err != nil || nop.CiphertextBlob == nil {
		t.Fatalf("GenerateDataKeyWithoutPlaintext: %v", err)
	}
	_, err = h.client.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: k1.KeyId, KeySpec: types.DataKeySpecAes256, NumberOfBytes: aws.Int32(32)})
	if got := awsapitest.ErrorCode(t, err); got != "ValidationException" {
		t.Fatalf("both KeySpec and NumberOfBytes: %s", got)
	}
	re, err := h.client.ReEncrypt(ctx, &awskms.ReEncryptInput{CiphertextBlob: dk.CiphertextBlob, SourceEncryptionContext: encCtx, DestinationKeyId: k2.KeyId})
	if err != nil {
		t.Fatal(err)
	}
	dec, err = h.client.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: re.CiphertextBlob})
	if err != nil || !bytes.Equal(dec.Plaintext, dk.Plaintext) || aws.ToString(dec.KeyId) != aws.ToString(k2.Arn) {
		t.Fatalf("decrypting the re-encrypted key: %v", err)
	}
}

func TestGrantsAndKeyPolicy(t *testing.T) {
	h := newHarness(t, "")
	ctx := context.Background()
	broker, brokerARN := h.roleClient(t, "broker")
	k := createKey(t, h.client, nil)
	enc, err := h.client.Encrypt(ctx, &awskms.EncryptInput{KeyId: k.KeyId, Plaintext: []byte("tls key"), EncryptionContext: map[string]string{"cluster": "c1", "node": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	decrypt := func(encCtx map[string]string) error {
		_, err := broker.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: encCtx})
		return err
	}
	good := map[string]string{"cluster": "c1", "node": "1"}
	// The default key policy delegates to IAM; with no Authorizer installed on the server, the
	// server allows (that path is covered with the IAM service in its tests). A key policy
	// without the account statement does not delegate.
	noDelegation := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:role/admin"},"Action":"kms:*","Resource":"*"}]}`
	// The lockout safety check refuses a policy that would stop the caller (the root) from
	// managing the key, unless it is bypassed.
	_, err = h.client.PutKeyPolicy(ctx, &awskms.PutKeyPolicyInput{KeyId: k.KeyId, Policy: aws.String(noDelegation), PolicyName: aws.String("default")})
	if got := awsapitest.ErrorCode(t, err); got != "MalformedPolicyDocumentException" {
		t.Fatalf("a locking-out policy: %s", got)
	}
	if _, err := h.client.PutKeyPolicy(ctx, &awskms.PutKeyPolicyInput{KeyId: k.KeyId, Policy: aws.String(noDelegation), PolicyName: aws.String("default"), BypassPolicyLockoutSafetyCheck: true}); err != nil {
		t.Fatal(err)
	}
	if got := awsapitest.ErrorCode(t, decrypt(good)); got != "AccessDeniedException" {
		t.Fatalf("decrypt without grant: %s", got)
	}
	g, err := h.client.CreateGrant(ctx, &awskms.CreateGrantInput{
		KeyId: k.KeyId, GranteePrincipal: aws.String(brokerARN), Operations: []types.GrantOperation{types.GrantOperationDecrypt},
		Constraints: &types.GrantConstraints{EncryptionContextSubset: map[string]string{"cluster": "c1"}},
		Name:        aws.String("broker-1"),
	})
	if err != nil {
		t.Fatal(err)
	}
	again, err := h.client.CreateGrant(ctx, &awskms.CreateGrantInput{
		KeyId: k.KeyId, GranteePrincipal: aws.String(brokerARN), Operations: []types.GrantOperation{types.GrantOperationDecrypt},
		Constraints: &types.GrantConstraints{EncryptionContextSubset: map[string]string{"cluster": "c1"}},
		Name:        aws.String("broker-1"),
	})
	if err != nil || aws.ToString(again.GrantId) != aws.ToString(g.GrantId) {
		t.Fatalf("repeated CreateGrant gave %v, %v", again, err)
	}
	if err := decrypt(good); err != nil {
		t.Fatalf("decrypt with grant: %v", err)
	}
	if got := awsapitest.ErrorCode(t, decrypt(map[string]string{"cluster": "c2", "node": "1"})); got != "AccessDeniedException" {
		t.Fatalf("decrypt outside the grant's context constraint: %s", got)
	}
	_, err = broker.Encrypt(ctx, &awskms.EncryptInput{KeyId: k.KeyId, Plaintext: []byte("x"), EncryptionContext: good})
	if got := awsapitest.ErrorCode(t, err); got != "AccessDeniedException" {
		t.Fatalf("encrypt not granted: %s", got)
	}
	list, err := h.client.ListGrants(ctx, &awskms.ListGrantsInput{KeyId: k.KeyId})
	if err != nil || len(list.Grants) != 1 || aws.ToString(list.Grants[0].GranteePrincipal) != brokerARN {
		t.Fatalf("ListGrants = %+v, %v", list, err)
	}
	if _, err := h.client.RevokeGrant(ctx, &awskms.RevokeGrantInput{KeyId: k.KeyId, GrantId: g.GrantId}); err != nil {
		t.Fatal(err)
	}
	if got := awsapitest.ErrorCode(t, decrypt(good)); got != "AccessDeniedException" {
		t.Fatalf("decrypt after revoke: %s", got)
	}
	g2, err := h.client.CreateGrant(ctx, &awskms.CreateGrantInput{KeyId: k.KeyId, GranteePrincipal: aws.String(brokerARN),
		RetiringPrincipal: aws.String(brokerARN), Operations: []types.GrantOperation{types.GrantOperationDecrypt}})
	if err != nil {
		t.Fatal(err)
	}
	retirable, err := h.client.ListRetirableGrants(ctx, &awskms.ListRetirableGrantsInput{RetiringPrincipal: aws.String(brokerARN)})
	if err != nil || len(retirable.Grants) != 1 || aws.ToString(retirable.Grants[0].GrantId) != aws.ToString(g2.GrantId) {
		t.Fatalf("ListRetirableGrants = %+v, %v", retirable, err)
	}
	if _, err := broker.RetireGrant(ctx, &awskms.RetireGrantInput{GrantToken: g2.GrantToken}); err != nil {
		t.Fatalf("RetireGrant by the retiring principal: %v", err)
	}
	if got := awsapitest.ErrorCode(t, decrypt(good)); got != "AccessDeniedException" {
		t.Fatalf("decrypt after retire: %s", got)
	}

	// A key policy statement naming the role directly allows it, with conditions.
	direct := `{"Statement":[{"Effect":"Allow","Principal":{"AWS":"` + brokerARN + `"},"Action":"kms:Decrypt","Resource":"*",
	  "Condition":{"StringEquals":{"kms:EncryptionContext:cluster":"c1"}}}]}`
	if _, err := h.client.PutKeyPolicy(ctx, &awskms.PutKeyPolicyInput{KeyId: k.KeyId, Policy: aws.String(direct), PolicyName: aws.String("default"), BypassPolicyLockoutSafetyCheck: true}); err != nil {
		t.Fatal(err)
	}
	if err := decrypt(good); err != nil {
		t.Fatalf("decrypt allowed by key policy: %v", err)
	}
	_, err = h.client.PutKeyPolicy(ctx, &awskms.PutKeyPolicyInput{KeyId: k.KeyId, Policy: aws.String("{not json"), PolicyName: aws.String("default")})
	if got := awsapitest.ErrorCode(t, err); got != "MalformedPolicyDocumentException" {
		t.Fatalf("malformed policy: %s", got)
	}
}

func TestTagsAndListing(t *testing.T) {
	h := newHarness(t, "")
	ctx := context.Background()
	var ids []string
	for range 3 {
		ids = append(ids, aws.ToString(createKey(t, h.client, nil).KeyId))
	}
	seen := map[string]bool{}
	var marker *string
	for page := 0; page < 5; page++ {
		out, err := h.client.ListKeys(ctx, &awskms.ListKeysInput{Limit: aws.Int32(2), Marker: marker})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range out.Keys {
			seen[aws.ToString(k.KeyId)] = true
		}
		if !out.Truncated {
			break
		}
		marker = out.NextMarker
	}
	for _, id := range ids {
		if !seen[id] {
			t.Fatalf("ListKeys missed %s (saw %v)", id, seen)
		}
	}
	if _, err := h.client.TagResource(ctx, &awskms.TagResourceInput{KeyId: aws.String(ids[0]), Tags: []types.Tag{
		{TagKey: aws.String("a"), TagValue: aws.String("1")}, {TagKey: aws.String("b"), TagValue: aws.String("2")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.UntagResource(ctx, &awskms.UntagResourceInput{KeyId: aws.String(ids[0]), TagKeys: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	tags, err := h.client.ListResourceTags(ctx, &awskms.ListResourceTagsInput{KeyId: aws.String(ids[0])})
	if err != nil {
		t.Fatal(err)
	}
	if len(tags.Tags) != 1 || aws.ToString(tags.Tags[0].TagKey) != "b" {
		t.Fatalf("tags %+v", tags.Tags)
	}
	_, err = h.client.CreateKey(ctx, &awskms.CreateKeyInput{KeySpec: types.KeySpecRsa2048, KeyUsage: types.KeyUsageTypeSignVerify})
	if got := awsapitest.ErrorCode(t, err); got != "UnsupportedOperationException" {
		t.Fatalf("asymmetric key: %s", got)
	}
}

func TestStatePersists(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, dir)
	ctx := context.Background()
	k := createKey(t, h.client, nil)
	if _, err := h.client.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/keep"), TargetKeyId: k.KeyId}); err != nil {
		t.Fatal(err)
	}
	enc, err := h.client.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String("alias/keep"), Plaintext: []byte("durable"), EncryptionContext: map[string]string{"a": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.svc.Close(); err != nil {
		t.Fatal(err)
	}

	restarted := newHarness(t, dir)
	dec, err := restarted.client.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: map[string]string{"a": "b"}, KeyId: aws.String("alias/keep")})
	if err != nil {
		t.Fatalf("decrypt after restart: %v", err)
	}
	if string(dec.Plaintext) != "durable" {
		t.Fatalf("plaintext %q", dec.Plaintext)
	}
}

func TestKeyResolver(t *testing.T) {
	h := newHarness(t, "")
	ctx := context.Background()
	k := createKey(t, h.client, nil)
	if _, err := h.client.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/vol"), TargetKeyId: k.KeyId}); err != nil {
		t.Fatal(err)
	}
	info, err := h.svc.ResolveKey(ctx, awsapi.DefaultAccount, "us-east-1", "alias/vol")
	if err != nil || info.ARN != aws.ToString(k.Arn) || !info.Enabled {
		t.Fatalf("ResolveKey = %+v, %v", info, err)
	}
	if _, err := h.client.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: k.KeyId}); err != nil {
		t.Fatal(err)
	}
	info, err = h.svc.ResolveKey(ctx, awsapi.DefaultAccount, "us-east-1", aws.ToString(k.Arn))
	if err != nil || info.Enabled || info.State != "Disabled" {
		t.Fatalf("ResolveKey of a disabled key = %+v, %v", info, err)
	}
	ebs1, err := h.svc.DefaultEBSKey(ctx, awsapi.DefaultAccount, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	ebs2, err := h.svc.DefaultEBSKey(ctx, awsapi.DefaultAccount, "us-east-1")
	if err != nil || ebs1.KeyID != ebs2.KeyID || !ebs1.Enabled {
		t.Fatalf("DefaultEBSKey not stable: %+v %+v %v", ebs1, ebs2, err)
	}
	d, err := h.client.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String("alias/aws/ebs")})
	if err != nil || d.KeyMetadata.KeyManager != types.KeyManagerTypeAws || aws.ToString(d.KeyMetadata.KeyId) != ebs1.KeyID {
		t.Fatalf("alias/aws/ebs: %+v %v", d, err)
	}
	_, err = h.client.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: aws.String("alias/aws/ebs")})
	if got := awsapitest.ErrorCode(t, err); got != "UnsupportedOperationException" {
		t.Fatalf("deleting an AWS managed key: %s", got)
	}
	_, err = h.client.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/mine"), TargetKeyId: aws.String(ebs1.KeyID)})
	if got := awsapitest.ErrorCode(t, err); got != "UnsupportedOperationException" {
		t.Fatalf("aliasing an AWS managed key: %s", got)
	}
	// Describing another predefined AWS alias creates its managed key, once.
	k1, err := h.client.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String("alias/aws/kafka")})
	if err != nil || k1.KeyMetadata.KeyManager != types.KeyManagerTypeAws {
		t.Fatalf("alias/aws/kafka: %+v %v", k1, err)
	}
	k2, err := h.client.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String("arn:aws:kms:us-east-1:000000000000:alias/aws/kafka")})
	if err != nil || aws.ToString(k2.KeyMetadata.KeyId) != aws.ToString(k1.KeyMetadata.KeyId) {
		t.Fatalf("alias/aws/kafka again: %+v %v", k2, err)
	}
}

// TestConcurrentUse encrypts and decrypts from several goroutines while the key rotates, as
// brokers booting together do; run with -race.
func TestConcurrentUse(t *testing.T) {
	h := newHarness(t, t.TempDir())
	ctx := context.Background()
	k := createKey(t, h.client, nil)
	const workers, rounds = 4, 10
	errs := make(chan error, workers+1)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			encCtx := map[string]string{"worker": string(rune('a' + w))}
			for range rounds {
				enc, err := h.client.Encrypt(ctx, &awskms.EncryptInput{KeyId: k.KeyId, Plaintext: []byte("p"), EncryptionContext: encCtx})
				if err != nil {
					errs <- err
					return
				}
				if _, err := h.client.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: encCtx}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 5 {
			if _, err := h.client.RotateKeyOnDemand(ctx, &awskms.RotateKeyOnDemandInput{KeyId: k.KeyId}); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
