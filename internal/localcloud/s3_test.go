package localcloud_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/tributary/tributary/internal/localcloud"
	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

func s3Client(c *localcloud.Cloud, cfg aws.Config) *awss3.Client {
	return awss3.NewFromConfig(cfg, func(o *awss3.Options) { o.UsePathStyle = true })
}

// TestS3SDK drives the local cloud's S3 through the AWS SDK: buckets, objects with metadata and
// checksums, listing with a delimiter and pages, ranged reads, deletes, S3's error codes, and
// the objects surviving a restart of the emulator.
func TestS3SDK(t *testing.T) {
	dir := t.TempDir()
	c := startCloud(t, dir)
	ctx := context.Background()
	client := s3Client(c, sdkConfig(c))

	if _, err := client.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("logs-1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("Bad_Name")}); errorCode(err) != "InvalidBucketName" {
		t.Fatalf("creating Bad_Name: %v, want InvalidBucketName", err)
	}
	if _, err := client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String("logs-1")}); err != nil {
		t.Fatal(err)
	}
	var nf *s3types.NotFound
	if _, err := client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String("nope")}); !errors.As(err, &nf) {
		t.Fatalf("head of a missing bucket: %v, want NotFound", err)
	}
	keys := []string{"p/AWSLogs/a/1.log.gz", "p/AWSLogs/a/2.log.gz", "p/AWSLogs/b/1.log.gz", "p/top.txt", "q/other", "p/with space+plus.txt"}
	for i, k := range keys {
		_, err := client.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("logs-1"), Key: aws.String(k),
			Body: bytes.NewReader([]byte(strings.Repeat("x", i+1))), ContentType: aws.String("text/plain"),
			Metadata: map[string]string{"node": "1"}, ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32})
		if err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	got, err := client.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("logs-1"), Key: aws.String("p/top.txt")})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(got.Body)
	got.Body.Close()
	if string(body) != "xxxx" || aws.ToString(got.ContentType) != "text/plain" || got.Metadata["node"] != "1" || aws.ToString(got.ETag) == "" {
		t.Fatalf("get: %q %+v", body, got)
	}
	part, err := client.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("logs-1"), Key: aws.String("p/with space+plus.txt"), Range: aws.String("bytes=1-3")})
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(part.Body)
	part.Body.Close()
	if string(body) != "xxx" || aws.ToString(part.ContentRange) != "bytes 1-3/6" {
		t.Fatalf("ranged get: %q %q", body, aws.ToString(part.ContentRange))
	}
	head, err := client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String("logs-1"), Key: aws.String("p/AWSLogs/b/1.log.gz")})
	if err != nil || aws.ToInt64(head.ContentLength) != 3 {
		t.Fatalf("head object: %v %+v", err, head)
	}
	if _, err := client.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("logs-1"), Key: aws.String("missing")}); errorCode(err) != "NoSuchKey" {
		t.Fatalf("get of a missing key: %v", err)
	}

	// One level at a time, as aws s3 ls does.
	l, err := client.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("logs-1"), Prefix: aws.String("p/"), Delimiter: aws.String("/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.CommonPrefixes) != 1 || aws.ToString(l.CommonPrefixes[0].Prefix) != "p/AWSLogs/" || len(l.Contents) != 2 || aws.ToInt32(l.KeyCount) != 3 {
		t.Fatalf("list p/ by /: %+v", l)
	}
	// Pages of two, every key once and in order.
	var all []string
	p := awss3.NewListObjectsV2Paginator(client, &awss3.ListObjectsV2Input{Bucket: aws.String("logs-1"), MaxKeys: aws.Int32(2)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			all = append(all, aws.ToString(o.Key))
		}
	}
	if len(all) != len(keys) || !sortedStrings(all) {
		t.Fatalf("paged listing: %q", all)
	}

	if _, err := client.DeleteBucket(ctx, &awss3.DeleteBucketInput{Bucket: aws.String("logs-1")}); errorCode(err) != "BucketNotEmpty" {
		t.Fatalf("deleting a bucket with objects: %v", err)
	}
	if _, err := client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String("logs-1"), Key: aws.String("q/other")}); err != nil {
		t.Fatal(err)
	}
	del, err := client.DeleteObjects(ctx, &awss3.DeleteObjectsInput{Bucket: aws.String("logs-1"), Delete: &s3types.Delete{
		Objects: []s3types.ObjectIdentifier{{Key: aws.String("p/AWSLogs/a/1.log.gz")}, {Key: aws.String("p/AWSLogs/a/2.log.gz")}}}})
	if err != nil || len(del.Deleted) != 2 || len(del.Errors) != 0 {
		t.Fatalf("delete objects: %v %+v", err, del)
	}

	// Restarted on the same directory, the bucket and its remaining objects are there.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = startCloud(t, dir)
	client = s3Client(c, sdkConfig(c))
	l, err = client.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("logs-1")})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, o := range l.Contents {
		left = append(left, aws.ToString(o.Key))
	}
	if strings.Join(left, ",") != "p/AWSLogs/b/1.log.gz,p/top.txt,p/with space+plus.txt" {
		t.Fatalf("after a restart: %q", left)
	}
	got, err = client.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("logs-1"), Key: aws.String("p/with space+plus.txt")})
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(got.Body)
	got.Body.Close()
	if string(body) != "xxxxxx" {
		t.Fatalf("content after a restart: %q", body)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "s3", "objects", "logs-1", "*.data")); len(files) != 3 {
		t.Fatalf("object files: %q", files)
	}
}

func sortedStrings(s []string) bool {
	for i := 1; i < len(s); i++ {
		if s[i-1] >= s[i] {
			return false
		}
	}
	return true
}

// TestS3CLI drives the local cloud's S3 through Debian's aws CLI, s3api and s3 alike: the
// commands an operator uses to find and read a broker's log objects.
func TestS3CLI(t *testing.T) {
	c := startCloud(t, "")
	cli := func(args ...string) []byte {
		t.Helper()
		out, err := awsCLI(t, c.Endpoint(), args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	cli("s3api", "create-bucket", "--bucket", "tributary-logs")
	cli("s3api", "head-bucket", "--bucket", "tributary-logs")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"msg":"starting tributary broker"}` + "\n"))
	zw.Close()
	src := filepath.Join(t.TempDir(), "Broker-1.log.gz")
	if err := os.WriteFile(src, gz.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cli("s3api", "put-object", "--bucket", "tributary-logs", "--key", "logs/AWSLogs/x/Broker-1.log.gz", "--body", src)
	cli("s3", "cp", src, "s3://tributary-logs/logs/AWSLogs/y/Broker-2.log.gz")

	var listed struct {
		Contents []struct {
			Key  string
			Size int
		}
	}
	if err := json.Unmarshal(cli("s3api", "list-objects-v2", "--bucket", "tributary-logs", "--prefix", "logs/"), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed.Contents) != 2 || listed.Contents[0].Size != gz.Len() {
		t.Fatalf("list-objects-v2: %+v", listed)
	}
	ls := string(cli("s3", "ls", "--recursive", "s3://tributary-logs/logs/"))
	if !strings.Contains(ls, "logs/AWSLogs/x/Broker-1.log.gz") || !strings.Contains(ls, "logs/AWSLogs/y/Broker-2.log.gz") {
		t.Fatalf("aws s3 ls --recursive:\n%s", ls)
	}
	if ls := string(cli("s3", "ls", "s3://tributary-logs/logs/AWSLogs/")); !strings.Contains(ls, "PRE x/") || !strings.Contains(ls, "PRE y/") {
		t.Fatalf("aws s3 ls of a prefix:\n%s", ls)
	}
	if ls := string(cli("s3", "ls")); !strings.Contains(ls, "tributary-logs") {
		t.Fatalf("aws s3 ls:\n%s", ls)
	}
	dst := filepath.Join(t.TempDir(), "copy.log.gz")
	cli("s3", "cp", "s3://tributary-logs/logs/AWSLogs/y/Broker-2.log.gz", dst)
	data, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	if !strings.Contains(string(plain), "starting tributary broker") {
		t.Fatalf("downloaded object: %q", plain)
	}
	if _, err := awsCLI(t, c.Endpoint(), "s3api", "delete-bucket", "--bucket", "tributary-logs"); err == nil || !strings.Contains(err.Error(), "BucketNotEmpty") {
		t.Fatalf("delete-bucket of a bucket with objects: %v", err)
	}
	cli("s3api", "delete-objects", "--bucket", "tributary-logs", "--delete", `{"Objects":[{"Key":"logs/AWSLogs/x/Broker-1.log.gz"}]}`)
	cli("s3", "rm", "s3://tributary-logs/logs/AWSLogs/y/Broker-2.log.gz")
	cli("s3api", "delete-bucket", "--bucket", "tributary-logs")
	if _, err := awsCLI(t, c.Endpoint(), "s3api", "head-bucket", "--bucket", "tributary-logs"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("head-bucket of a deleted bucket: %v", err)
	}
}

// TestS3IsAuthorizedByIAM: a role allowed s3:PutObject on one bucket prefix writes there and
// nowhere else (another prefix, another bucket, reading back), with S3's AccessDenied; an
// unknown access key is InvalidAccessKeyId.
func TestS3IsAuthorizedByIAM(t *testing.T) {
	c := startCloud(t, "")
	ctx := context.Background()
	admin := s3Client(c, sdkConfig(c))
	for _, b := range []string{"logs-a", "logs-b"} {
		if _, err := admin.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
	}
	iamc := iam.NewFromConfig(sdkConfig(c))
	role, err := iamc.CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String("broker"),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := iamc.PutRolePolicy(ctx, &iam.PutRolePolicyInput{RoleName: aws.String("broker"), PolicyName: aws.String("logs"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::logs-a/brokers/*"}]}`)}); err != nil {
		t.Fatal(err)
	}
	session, err := c.Credentials().IssueSession(awsapi.AssumedRoleIdentity(awsapi.DefaultAccount, aws.ToString(role.Role.Arn), aws.ToString(role.Role.RoleId), "i-1"), time.Hour, "test")
	if err != nil {
		t.Fatal(err)
	}
	cfg := sdkConfig(c)
	cfg.Credentials = credentials.NewStaticCredentialsProvider(session.AccessKeyID, session.SecretAccessKey, session.SessionToken)
	broker := s3Client(c, cfg)
	put := func(bucket, key string) error {
		_, err := broker.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader("line")})
		return err
	}
	if err := put("logs-a", "brokers/AWSLogs/1.log.gz"); err != nil {
		t.Fatalf("put under the allowed prefix: %v", err)
	}
	for _, refused := range [][2]string{{"logs-a", "elsewhere/1.log.gz"}, {"logs-b", "brokers/1.log.gz"}} {
		if err := put(refused[0], refused[1]); errorCode(err) != "AccessDenied" {
			t.Fatalf("put to s3://%s/%s: %v, want AccessDenied", refused[0], refused[1], err)
		}
	}
	if _, err := broker.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("logs-a"), Key: aws.String("brokers/AWSLogs/1.log.gz")}); errorCode(err) != "AccessDenied" {
		t.Fatalf("get without s3:GetObject: %v", err)
	}
	creds := []string{"AWS_ACCESS_KEY_ID=" + session.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + session.SecretAccessKey, "AWS_SESSION_TOKEN=" + session.SessionToken}
	if _, err := awsCLIAs(t, c.Endpoint(), creds, "s3", "ls", "s3://logs-a/"); err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("aws s3 ls without s3:ListBucket: %v", err)
	}
	cfg.Credentials = credentials.NewStaticCredentialsProvider("AKIANOSUCHKEY0000000", "x", "")
	if _, err := s3Client(c, cfg).HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String("logs-a")}); err == nil {
		t.Fatal("an unknown key was let in")
	}
	if _, err := s3Client(c, cfg).ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String("logs-a")}); errorCode(err) != "InvalidAccessKeyId" {
		t.Fatalf("unknown key: %v, want InvalidAccessKeyId", err)
	}
}

// TestS3RefusesUnsigned: a request without a signature is S3's AccessDenied document, and a
// sub-resource the emulator does not serve is NotImplemented, not a plain object call.
func TestS3RefusesUnsigned(t *testing.T) {
	c := startCloud(t, "")
	resp, err := http.Get(c.Endpoint() + "/logs-a/key")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "<Code>AccessDenied</Code>") || resp.Header.Get("X-Amz-Request-Id") == "" {
		t.Fatalf("unsigned GET: %d %s", resp.StatusCode, body)
	}
	ctx := context.Background()
	client := s3Client(c, sdkConfig(c))
	if _, err := client.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("logs-a")}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.GetBucketVersioning(ctx, &awss3.GetBucketVersioningInput{Bucket: aws.String("logs-a")}); errorCode(err) != "NotImplemented" {
		t.Fatalf("GetBucketVersioning: %v, want NotImplemented", err)
	}
}
