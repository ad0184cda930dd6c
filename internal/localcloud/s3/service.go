// Package s3 emulates the part of Amazon S3 that Tributary's brokers and operators use for log
// delivery: buckets (CreateBucket, HeadBucket, DeleteBucket, ListBuckets) and objects
// (PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects, ListObjectsV2 and the older
// ListObjects), path-style (http://<endpoint>/<bucket>/<key>), each call authorized by IAM with
// S3's action names and ARNs (s3:PutObject on arn:aws:s3:::<bucket>/<key>, s3:ListBucket on
// arn:aws:s3:::<bucket> with the s3:prefix condition key). Errors are S3's <Error> documents.
//
// Object contents live in files of the service's state directory, each beside a small JSON file
// with its key and metadata; only the metadata is held in memory.
package s3

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

// xmlns is S3's XML namespace.
const xmlns = "http://s3.amazonaws.com/doc/2006-03-01/"

// Service is the emulated S3 of one account. It is safe for concurrent use.
type Service struct {
	account string
	region  string
	dir     string // state directory ("" keeps nothing on disk)
	log     *slog.Logger
	now     func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	// memory holds object contents when there is no state directory.
	memory map[string][]byte
}

var _ awsapi.Service = (*Service)(nil)

type bucket struct {
	Name    string    `json:"name"`
	Region  string    `json:"region"`
	Created time.Time `json:"created"`

	objects map[string]*object
}

// object is one object's metadata; its content is in a file named by the key's hash.
type object struct {
	Key         string            `json:"key"`
	Size        int64             `json:"size"`
	ETag        string            `json:"etag"` // quoted hex MD5, as S3 writes it
	ContentType string            `json:"contentType,omitempty"`
	Encoding    string            `json:"contentEncoding,omitempty"`
	Modified    time.Time         `json:"modified"`
	Metadata    map[string]string `json:"metadata,omitempty"` // x-amz-meta-*, lower-case names
}

// New returns the S3 service, restoring its buckets and objects from env.StateDir.
func New(env awsapi.Env) (*Service, error) {
	env = env.WithDefaults()
	s := &Service{account: env.Account, region: env.Region, dir: env.StateDir, log: env.Logger, now: env.Now,
		buckets: map[string]*bucket{}, memory: map[string][]byte{}}
	if s.dir == "" {
		return s, nil
	}
	data, err := os.ReadFile(filepath.Join(s.dir, "buckets.json"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("reading S3 state: %w", err)
	}
	var list []*bucket
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("reading S3 state %s: %w", filepath.Join(s.dir, "buckets.json"), err)
	}
	for _, b := range list {
		b.objects = map[string]*object{}
		metas, err := filepath.Glob(filepath.Join(s.bucketDir(b.Name), "*.json"))
		if err != nil {
			return nil, err
		}
		for _, m := range metas {
			data, err := os.ReadFile(m)
			if err != nil {
				return nil, fmt.Errorf("reading S3 object metadata: %w", err)
			}
			var o object
			if err := json.Unmarshal(data, &o); err != nil {
				return nil, fmt.Errorf("reading S3 object metadata %s: %w", m, err)
			}
			if _, err := os.Stat(s.dataPath(b.Name, o.Key)); err != nil {
				// A crash between the content and the metadata write leaves
				// metadata of an object whose content never landed.
				s.log.Warn("S3 object without content dropped", "bucket", b.Name, "key", o.Key, "err", err)
				continue
			}
			b.objects[o.Key] = &o
		}
		s.buckets[b.Name] = b
	}
	return s, nil
}

// Close has nothing to flush: every change is written when it is made.
func (s *Service) Close() error { return nil }

func (s *Service) bucketDir(name string) string { return filepath.Join(s.dir, "objects", name) }

// objectFile names an object's files by its key's hash: keys may hold any character.
func objectFile(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

func (s *Service) dataPath(bucket, key string) string {
	return filepath.Join(s.bucketDir(bucket), objectFile(key)+".data")
}

func (s *Service) metaPath(bucket, key string) string {
	return filepath.Join(s.bucketDir(bucket), objectFile(key)+".json")
}

func (s *Service) saveBucketsLocked() error {
	if s.dir == "" {
		return nil
	}
	list := make([]*bucket, 0, len(s.buckets))
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range s.buckets {
			if !yield(k) {
				return
			}
		}
	}) {
		list = append(list, s.buckets[name])
	}
	data, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	return awsapi.WriteFileAtomic(filepath.Join(s.dir, "buckets.json"), data, 0o600)
}

// writeObject stores an object's content, then its metadata: the metadata names only content
// that is on disk.
func (s *Service) writeObject(b *bucket, o *object, content []byte) error {
	if s.dir == "" {
		s.memory[b.Name+"/"+o.Key] = content
		return nil
	}
	if err := awsapi.WriteFileAtomic(s.dataPath(b.Name, o.Key), content, 0o600); err != nil {
		return fmt.Errorf("storing s3://%s/%s: %w", b.Name, o.Key, err)
	}
	meta, err := json.Marshal(o)
	if err != nil {
		return err
	}
	if err := awsapi.WriteFileAtomic(s.metaPath(b.Name, o.Key), meta, 0o600); err != nil {
		return fmt.Errorf("storing s3://%s/%s: %w", b.Name, o.Key, err)
	}
	return nil
}

func (s *Service) readObject(b *bucket, o *object) ([]byte, error) {
	if s.dir == "" {
		return s.memory[b.Name+"/"+o.Key], nil
	}
	data, err := os.ReadFile(s.dataPath(b.Name, o.Key))
	if err != nil {
		return nil, fmt.Errorf("reading s3://%s/%s: %w", b.Name, o.Key, err)
	}
	return data, nil
}

func (s *Service) removeObject(b *bucket, key string) error {
	delete(b.objects, key)
	if s.dir == "" {
		delete(s.memory, b.Name+"/"+key)
		return nil
	}
	// The metadata goes first: content without metadata is never listed.
	if err := os.Remove(s.metaPath(b.Name, key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleting s3://%s/%s: %w", b.Name, key, err)
	}
	if err := os.Remove(s.dataPath(b.Name, key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleting s3://%s/%s: %w", b.Name, key, err)
	}
	return nil
}

// operation serves one action; it runs with s.mu held.
type operation func(s *Service, c *call) (*awsapi.Response, error)

var operations = map[string]operation{
	"ListBuckets":   (*Service).listBuckets,
	"CreateBucket":  (*Service).createBucket,
	"HeadBucket":    (*Service).headBucket,
	"DeleteBucket":  (*Service).deleteBucket,
	"ListObjectsV2": (*Service).listObjectsV2,
	"ListObjects":   (*Service).listObjects,
	"PutObject":     (*Service).putObject,
	"GetObject":     (*Service).getObject,
	"HeadObject":    (*Service).headObject,
	"DeleteObject":  (*Service).deleteObject,
	"DeleteObjects": (*Service).deleteObjects,
}

// call is one request with its bucket name and key taken from the path.
type call struct {
	ctx    context.Context
	req    *awsapi.Request
	bucket string
	key    string
}

// Handle serves one S3 request.
func (s *Service) Handle(ctx context.Context, req *awsapi.Request) (*awsapi.Response, error) {
	if req.Protocol != awsapi.ProtocolRESTXML {
		return nil, awsapi.Errorf("InvalidRequest", "S3 is served path-style: <method> /<bucket>/<key>")
	}
	op, ok := operations[req.Action]
	if !ok {
		return nil, awsapi.ErrorfStatus(http.StatusNotImplemented, "NotImplemented",
			"A header or query you provided implies functionality that is not implemented (the local cloud's S3 does not serve %s)", req.Action)
	}
	for _, unsupported := range []string{"versionId", "partNumber"} {
		if req.Params.Has(unsupported) {
			return nil, awsapi.ErrorfStatus(http.StatusNotImplemented, "NotImplemented", "The local cloud's S3 does not serve %s (no versioning, no multipart uploads)", unsupported)
		}
	}
	c := &call{ctx: ctx, req: req}
	c.bucket, c.key, _ = strings.Cut(strings.TrimPrefix(req.HTTP.URL.Path, "/"), "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	return op(s, c)
}

// authorize asks IAM whether the caller may perform action on resource (a bucket or object ARN).
func (c *call) authorize(action, resource string, conditions map[string][]string) error {
	return c.req.Authorize(c.ctx, action, resource, conditions)
}

func bucketARN(name string) string { return "arn:aws:s3:::" + name }

func objectARN(bucket, key string) string { return "arn:aws:s3:::" + bucket + "/" + key }

func noSuchBucket(name string) error {
	return awsapi.ErrorfStatus(http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist: %s", name)
}

func noSuchKey() error {
	return awsapi.ErrorfStatus(http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
}

// bucketNamePattern is S3's rule for general purpose bucket names (3-63 characters of lower-case
// letters, digits, dots and hyphens, beginning and ending with a letter or digit).
var bucketNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// ValidBucketName reports whether S3 accepts name for a new bucket.
func ValidBucketName(name string) bool {
	return bucketNamePattern.MatchString(name) && !strings.Contains(name, "..") &&
		!ipAddress.MatchString(name) && !strings.HasPrefix(name, "xn--") && !strings.HasSuffix(name, "-s3alias")
}

var ipAddress = regexp.MustCompile(`^\d+\.\d+\.\d+\.\d+$`)

// findLocked returns the named bucket after authorizing action on resource.
func (s *Service) findLocked(c *call, action, resource string, conditions map[string][]string) (*bucket, error) {
	if err := c.authorize(action, resource, conditions); err != nil {
		return nil, err
	}
	b := s.buckets[c.bucket]
	if b == nil {
		return nil, noSuchBucket(c.bucket)
	}
	return b, nil
}
