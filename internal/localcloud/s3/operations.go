package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"hash/crc32"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tributary/tributary/internal/localcloud/awsapi"
)

// xmlResponse encodes v as an S3 XML document.
func xmlResponse(v any) (*awsapi.Response, error) {
	body, err := xml.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding S3 response: %w", err)
	}
	return &awsapi.Response{Header: http.Header{"Content-Type": {"application/xml"}}, Body: append([]byte(xml.Header), body...)}, nil
}

// s3Time is S3's timestamp in XML documents.
func s3Time(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

type owner struct {
	ID          string `xml:"ID"`
	DisplayName string `xml:"DisplayName"`
}

func (s *Service) owner() owner { return owner{ID: s.account, DisplayName: "local"} }

func (s *Service) listBuckets(c *call) (*awsapi.Response, error) {
	if err := c.authorize("s3:ListAllMyBuckets", "*", nil); err != nil {
		return nil, err
	}
	type entry struct {
		Name         string `xml:"Name"`
		CreationDate string `xml:"CreationDate"`
		BucketRegion string `xml:"BucketRegion"`
	}
	out := struct {
		XMLName xml.Name `xml:"ListAllMyBucketsResult"`
		Xmlns   string   `xml:"xmlns,attr"`
		Owner   owner    `xml:"Owner"`
		Buckets []entry  `xml:"Buckets>Bucket"`
	}{Xmlns: xmlns, Owner: s.owner()}
	for _, name := range sortedKeys(s.buckets) {
		b := s.buckets[name]
		out.Buckets = append(out.Buckets, entry{Name: b.Name, CreationDate: s3Time(b.Created), BucketRegion: b.Region})
	}
	return xmlResponse(out)
}

func (s *Service) createBucket(c *call) (*awsapi.Response, error) {
	if err := c.authorize("s3:CreateBucket", bucketARN(c.bucket), nil); err != nil {
		return nil, err
	}
	if !ValidBucketName(c.bucket) {
		return nil, awsapi.Errorf("InvalidBucketName", "The specified bucket is not valid: %q (3-63 of a-z 0-9 . -, beginning and ending with a letter or digit)", c.bucket)
	}
	region := c.req.Region
	if len(bytes.TrimSpace(c.req.Body)) > 0 {
		var conf struct {
			LocationConstraint string `xml:"LocationConstraint"`
		}
		if err := xml.Unmarshal(c.req.Body, &conf); err != nil {
			return nil, awsapi.Errorf("MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema: %v", err)
		}
		if conf.LocationConstraint != "" {
			region = conf.LocationConstraint
		}
	}
	if region != c.req.Region {
		return nil, awsapi.Errorf("IllegalLocationConstraintException",
			"The %s location constraint is incompatible for the region specific endpoint this request was sent to.", region)
	}
	if b := s.buckets[c.bucket]; b != nil {
		if b.Region == "us-east-1" {
			// us-east-1 answers a create of one's own bucket with success.
			return &awsapi.Response{Header: http.Header{"Location": {"/" + c.bucket}}}, nil
		}
		return nil, awsapi.ErrorfStatus(http.StatusConflict, "BucketAlreadyOwnedByYou",
			"Your previous request to create the named bucket succeeded and you already own it.")
	}
	b := &bucket{Name: c.bucket, Region: region, Created: s.now().UTC(), objects: map[string]*object{}}
	s.buckets[c.bucket] = b
	if err := s.saveBucketsLocked(); err != nil {
		delete(s.buckets, c.bucket)
		return nil, err
	}
	return &awsapi.Response{Header: http.Header{"Location": {"/" + c.bucket}}}, nil
}

func (s *Service) headBucket(c *call) (*awsapi.Response, error) {
	b, err := s.findLocked(c, "s3:ListBucket", bucketARN(c.bucket), nil)
	if err != nil {
		return nil, err
	}
	return &awsapi.Response{Header: http.Header{"X-Amz-Bucket-Region": {b.Region}}}, nil
}

func (s *Service) deleteBucket(c *call) (*awsapi.Response, error) {
	b, err := s.findLocked(c, "s3:DeleteBucket", bucketARN(c.bucket), nil)
	if err != nil {
		return nil, err
	}
	if len(b.objects) > 0 {
		return nil, awsapi.ErrorfStatus(http.StatusConflict, "BucketNotEmpty", "The bucket you tried to delete is not empty")
	}
	delete(s.buckets, c.bucket)
	if err := s.saveBucketsLocked(); err != nil {
		s.buckets[c.bucket] = b
		return nil, err
	}
	if s.dir != "" {
		if err := os.RemoveAll(s.bucketDir(c.bucket)); err != nil {
			s.log.Warn("removing a deleted bucket's directory", "bucket", c.bucket, "err", err)
		}
	}
	return &awsapi.Response{Status: http.StatusNoContent}, nil
}

// listing is what ListObjects and ListObjectsV2 share: the keys after a point, grouped by the
// delimiter, at most maxKeys entries (keys and common prefixes together, as S3 counts them).
type listing struct {
	contents  []*object
	prefixes  []string
	truncated bool
	last      string // the last key or prefix returned, where the next page starts after
}

func list(b *bucket, prefix, delimiter, after string, maxKeys int) listing {
	var l listing
	keys := sortedKeys(b.objects)
	i, _ := slices.BinarySearch(keys, after)
	for ; i < len(keys); i++ {
		k := keys[i]
		if k <= after || !strings.HasPrefix(k, prefix) {
			continue
		}
		entry, isPrefix := k, false
		if delimiter != "" {
			if j := strings.Index(k[len(prefix):], delimiter); j >= 0 {
				entry, isPrefix = k[:len(prefix)+j+len(delimiter)], true
			}
		}
		if isPrefix && len(l.prefixes) > 0 && l.prefixes[len(l.prefixes)-1] == entry {
			continue
		}
		if len(l.contents)+len(l.prefixes) == maxKeys {
			l.truncated = true
			break
		}
		if isPrefix {
			l.prefixes = append(l.prefixes, entry)
			// Skip the rest of this prefix: the page ends after it.
			l.last = entry + "\U0010FFFF"
		} else {
			l.contents = append(l.contents, b.objects[k])
			l.last = k
		}
	}
	return l
}

type listEntry struct {
	Key          string `xml:"Key"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag"`
	Size         int64  `xml:"Size"`
	StorageClass string `xml:"StorageClass"`
	Owner        *owner `xml:"Owner,omitempty"`
}

type commonPrefix struct {
	Prefix string `xml:"Prefix"`
}

// listParams reads what both List calls take, and authorizes s3:ListBucket with S3's condition keys.
func (s *Service) listParams(c *call) (b *bucket, prefix, delimiter string, maxKeys int, encode func(string) string, err error) {
	q := c.req.Params
	prefix, delimiter = q.Get("prefix"), q.Get("delimiter")
	maxKeys = 1000
	if v := q.Get("max-keys"); v != "" {
		n, perr := strconv.Atoi(v)
		if perr != nil || n < 0 {
			return nil, "", "", 0, nil, awsapi.Errorf("InvalidArgument", "Provided max-keys not an integer or within integer range")
		}
		maxKeys = min(n, 1000)
	}
	encode = func(v string) string { return v }
	switch q.Get("encoding-type") {
	case "":
	case "url":
		encode = func(v string) string { return strings.ReplaceAll(url.QueryEscape(v), "+", "%20") }
	default:
		return nil, "", "", 0, nil, awsapi.Errorf("InvalidArgument", "Invalid Encoding Method specified in Request")
	}
	conditions := map[string][]string{"s3:prefix": {prefix}, "s3:max-keys": {strconv.Itoa(maxKeys)}}
	if delimiter != "" {
		conditions["s3:delimiter"] = []string{delimiter}
	}
	b, err = s.findLocked(c, "s3:ListBucket", bucketARN(c.bucket), conditions)
	return b, prefix, delimiter, maxKeys, encode, err
}

func (s *Service) listObjectsV2(c *call) (*awsapi.Response, error) {
	b, prefix, delimiter, maxKeys, encode, err := s.listParams(c)
	if err != nil {
		return nil, err
	}
	q := c.req.Params
	after := q.Get("start-after")
	if tok := q.Get("continuation-token"); tok != "" {
		raw, derr := base64.RawURLEncoding.DecodeString(tok)
		if derr != nil {
			return nil, awsapi.Errorf("InvalidArgument", "The continuation token provided is incorrect")
		}
		after = string(raw)
	}
	l := list(b, prefix, delimiter, after, maxKeys)
	out := struct {
		XMLName               xml.Name       `xml:"ListBucketResult"`
		Xmlns                 string         `xml:"xmlns,attr"`
		Name                  string         `xml:"Name"`
		Prefix                string         `xml:"Prefix"`
		Delimiter             string         `xml:"Delimiter,omitempty"`
		MaxKeys               int            `xml:"MaxKeys"`
		EncodingType          string         `xml:"EncodingType,omitempty"`
		KeyCount              int            `xml:"KeyCount"`
		IsTruncated           bool           `xml:"IsTruncated"`
		ContinuationToken     string         `xml:"ContinuationToken,omitempty"`
		NextContinuationToken string         `xml:"NextContinuationToken,omitempty"`
		StartAfter            string         `xml:"StartAfter,omitempty"`
		Contents              []listEntry    `xml:"Contents"`
		CommonPrefixes        []commonPrefix `xml:"CommonPrefixes"`
	}{Xmlns: xmlns, Name: b.Name, Prefix: encode(prefix), MaxKeys: maxKeys, EncodingType: q.Get("encoding-type"),
		KeyCount: len(l.contents) + len(l.prefixes), IsTruncated: l.truncated, ContinuationToken: q.Get("continuation-token"),
		StartAfter: encode(q.Get("start-after"))}
	if delimiter != "" {
		out.Delimiter = encode(delimiter)
	}
	if l.truncated {
		out.NextContinuationToken = base64.RawURLEncoding.EncodeToString([]byte(l.last))
	}
	fetchOwner := q.Get("fetch-owner") == "true"
	for _, o := range l.contents {
		e := entryOf(o, encode)
		if fetchOwner {
			own := s.owner()
			e.Owner = &own
		}
		out.Contents = append(out.Contents, e)
	}
	for _, p := range l.prefixes {
		out.CommonPrefixes = append(out.CommonPrefixes, commonPrefix{encode(p)})
	}
	return xmlResponse(out)
}

func (s *Service) listObjects(c *call) (*awsapi.Response, error) {
	b, prefix, delimiter, maxKeys, encode, err := s.listParams(c)
	if err != nil {
		return nil, err
	}
	marker := c.req.Params.Get("marker")
	l := list(b, prefix, delimiter, marker, maxKeys)
	out := struct {
		XMLName        xml.Name       `xml:"ListBucketResult"`
		Xmlns          string         `xml:"xmlns,attr"`
		Name           string         `xml:"Name"`
		Prefix         string         `xml:"Prefix"`
		Marker         string         `xml:"Marker"`
		NextMarker     string         `xml:"NextMarker,omitempty"`
		Delimiter      string         `xml:"Delimiter,omitempty"`
		MaxKeys        int            `xml:"MaxKeys"`
		EncodingType   string         `xml:"EncodingType,omitempty"`
		IsTruncated    bool           `xml:"IsTruncated"`
		Contents       []listEntry    `xml:"Contents"`
		CommonPrefixes []commonPrefix `xml:"CommonPrefixes"`
	}{Xmlns: xmlns, Name: b.Name, Prefix: encode(prefix), Marker: encode(marker), MaxKeys: maxKeys,
		EncodingType: c.req.Params.Get("encoding-type"), IsTruncated: l.truncated}
	if delimiter != "" {
		out.Delimiter = encode(delimiter)
		if l.truncated {
			out.NextMarker = encode(strings.TrimSuffix(l.last, "\U0010FFFF"))
		}
	}
	for _, o := range l.contents {
		own := s.owner()
		e := entryOf(o, encode)
		e.Owner = &own
		out.Contents = append(out.Contents, e)
	}
	for _, p := range l.prefixes {
		out.CommonPrefixes = append(out.CommonPrefixes, commonPrefix{encode(p)})
	}
	return xmlResponse(out)
}

func entryOf(o *object, encode func(string) string) listEntry {
	return listEntry{Key: encode(o.Key), LastModified: s3Time(o.Modified), ETag: o.ETag, Size: o.Size, StorageClass: "STANDARD"}
}

// maxKeyBytes is S3's limit on a key's length (UTF-8 bytes).
const maxKeyBytes = 1024

func (s *Service) putObject(c *call) (*awsapi.Response, error) {
	if c.req.HTTP.Header.Get("X-Amz-Copy-Source") != "" {
		return nil, awsapi.ErrorfStatus(http.StatusNotImplemented, "NotImplemented", "The local cloud's S3 does not serve CopyObject")
	}
	b, err := s.findLocked(c, "s3:PutObject", objectARN(c.bucket, c.key), nil)
	if err != nil {
		return nil, err
	}
	if len(c.key) > maxKeyBytes {
		return nil, awsapi.Errorf("KeyTooLongError", "Your key is too long")
	}
	h := c.req.HTTP.Header
	if enc := h.Get("Content-Encoding"); strings.Contains(enc, "aws-chunked") {
		return nil, awsapi.ErrorfStatus(http.StatusNotImplemented, "NotImplemented",
			"The local cloud's S3 does not take aws-chunked uploads: sign the payload (plain HTTP endpoints get signed payloads from the SDK and the aws CLI)")
	}
	body := c.req.Body
	sum := md5.Sum(body)
	if want := h.Get("Content-Md5"); want != "" {
		got, derr := base64.StdEncoding.DecodeString(want)
		if derr != nil || len(got) != md5.Size {
			return nil, awsapi.Errorf("InvalidDigest", "The Content-MD5 you specified was invalid.")
		}
		if !bytes.Equal(got, sum[:]) {
			return nil, awsapi.Errorf("BadDigest", "The Content-MD5 you specified did not match what we received.")
		}
	}
	if err := checkCRC32(h, body); err != nil {
		return nil, err
	}
	o := &object{Key: c.key, Size: int64(len(body)), ETag: `"` + hex.EncodeToString(sum[:]) + `"`,
		ContentType: h.Get("Content-Type"), Encoding: h.Get("Content-Encoding"), Modified: s.now().UTC().Truncate(time.Second)}
	if o.ContentType == "" {
		o.ContentType = "binary/octet-stream"
	}
	for name, values := range h {
		if m, ok := strings.CutPrefix(strings.ToLower(name), "x-amz-meta-"); ok && len(values) > 0 {
			if o.Metadata == nil {
				o.Metadata = map[string]string{}
			}
			o.Metadata[m] = values[0]
		}
	}
	if err := s.writeObject(b, o, body); err != nil {
		return nil, err
	}
	b.objects[c.key] = o
	out := http.Header{"Etag": {o.ETag}}
	if v := h.Get("X-Amz-Checksum-Crc32"); v != "" {
		out.Set("X-Amz-Checksum-Crc32", v)
	}
	return &awsapi.Response{Header: out}, nil
}

// DeliverObject implements awsapi.ObjectStore: an object another service delivers (Firehose),
// which has authorized the write itself.
func (s *Service) DeliverObject(ctx context.Context, bucketName, key string, body []byte, contentType, contentEncoding string) error {
	if len(key) > maxKeyBytes {
		return fmt.Errorf("s3://%s/%s: the key is longer than %d bytes", bucketName, key, maxKeyBytes)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.buckets[bucketName]
	if b == nil {
		return fmt.Errorf("bucket %s: %w", bucketName, awsapi.ErrNotFound)
	}
	sum := md5.Sum(body)
	o := &object{Key: key, Size: int64(len(body)), ETag: `"` + hex.EncodeToString(sum[:]) + `"`,
		ContentType: contentType, Encoding: contentEncoding, Modified: s.now().UTC().Truncate(time.Second)}
	if err := s.writeObject(b, o, body); err != nil {
		return err
	}
	b.objects[key] = o
	return nil
}

// checkCRC32 verifies the CRC32 checksum newer SDKs send with a body (x-amz-checksum-crc32,
// base64 of the big-endian checksum); other algorithms are refused rather than ignored.
func checkCRC32(h http.Header, body []byte) error {
	for name := range h {
		lower := strings.ToLower(name)
		if !strings.HasPrefix(lower, "x-amz-checksum-") || lower == "x-amz-checksum-crc32" || lower == "x-amz-checksum-type" || lower == "x-amz-checksum-mode" {
			continue
		}
		return awsapi.ErrorfStatus(http.StatusNotImplemented, "NotImplemented", "The local cloud's S3 verifies CRC32 and Content-MD5 checksums only, not %s", name)
	}
	want := h.Get("X-Amz-Checksum-Crc32")
	if want == "" {
		return nil
	}
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc32.ChecksumIEEE(body))
	if want != base64.StdEncoding.EncodeToString(sum[:]) {
		return awsapi.Errorf("BadDigest", "The CRC32 you specified did not match the calculated checksum.")
	}
	return nil
}

func (s *Service) objectLocked(c *call) (*bucket, *object, error) {
	b, err := s.findLocked(c, "s3:GetObject", objectARN(c.bucket, c.key), nil)
	if err != nil {
		return nil, nil, err
	}
	o := b.objects[c.key]
	if o == nil {
		return nil, nil, noSuchKey()
	}
	return b, o, nil
}

func objectHeaders(o *object) http.Header {
	h := http.Header{
		"Etag":           {o.ETag},
		"Last-Modified":  {o.Modified.UTC().Format(http.TimeFormat)},
		"Content-Type":   {o.ContentType},
		"Accept-Ranges":  {"bytes"},
		"Content-Length": {strconv.FormatInt(o.Size, 10)},
	}
	if o.Encoding != "" {
		h.Set("Content-Encoding", o.Encoding)
	}
	for k, v := range o.Metadata {
		h.Set("X-Amz-Meta-"+k, v)
	}
	return h
}

func (s *Service) headObject(c *call) (*awsapi.Response, error) {
	_, o, err := s.objectLocked(c)
	if err != nil {
		return nil, err
	}
	return &awsapi.Response{Header: objectHeaders(o)}, nil
}

func (s *Service) getObject(c *call) (*awsapi.Response, error) {
	b, o, err := s.objectLocked(c)
	if err != nil {
		return nil, err
	}
	data, err := s.readObject(b, o)
	if err != nil {
		return nil, err
	}
	h := objectHeaders(o)
	for _, p := range []string{"content-type", "content-encoding", "content-disposition", "cache-control", "content-language", "expires"} {
		if v := c.req.Params.Get("response-" + p); v != "" {
			h.Set(p, v)
		}
	}
	rng := c.req.HTTP.Header.Get("Range")
	if rng == "" {
		return &awsapi.Response{Header: h, Body: data}, nil
	}
	start, end, ok := parseRange(rng, int64(len(data)))
	if !ok {
		return nil, awsapi.ErrorfStatus(http.StatusRequestedRangeNotSatisfiable, "InvalidRange", "The requested range is not satisfiable")
	}
	h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, len(data)))
	h.Set("Content-Length", strconv.FormatInt(end-start+1, 10))
	return &awsapi.Response{Status: http.StatusPartialContent, Header: h, Body: data[start : end+1]}, nil
}

// parseRange reads one HTTP byte range (bytes=a-b, bytes=a-, bytes=-n) of a size-byte object.
func parseRange(v string, size int64) (start, end int64, ok bool) {
	spec, found := strings.CutPrefix(v, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	a, z, found := strings.Cut(spec, "-")
	if !found {
		return 0, 0, false
	}
	var err error
	switch {
	case a == "":
		n, err := strconv.ParseInt(z, 10, 64)
		if err != nil || n <= 0 {
			return 0, 0, false
		}
		return max(0, size-n), size - 1, size > 0
	case z == "":
		start, err = strconv.ParseInt(a, 10, 64)
		end = size - 1
	default:
		start, err = strconv.ParseInt(a, 10, 64)
		if err == nil {
			end, err = strconv.ParseInt(z, 10, 64)
		}
		end = min(end, size-1)
	}
	if err != nil || start < 0 || start >= size || end < start {
		return 0, 0, false
	}
	return start, end, true
}

func (s *Service) deleteObject(c *call) (*awsapi.Response, error) {
	b, err := s.findLocked(c, "s3:DeleteObject", objectARN(c.bucket, c.key), nil)
	if err != nil {
		return nil, err
	}
	// Deleting a key that does not exist succeeds, as in S3.
	if err := s.removeObject(b, c.key); err != nil {
		return nil, err
	}
	return &awsapi.Response{Status: http.StatusNoContent}, nil
}

// maxDeleteKeys is DeleteObjects' limit.
const maxDeleteKeys = 1000

func (s *Service) deleteObjects(c *call) (*awsapi.Response, error) {
	b := s.buckets[c.bucket]
	if b == nil {
		if err := c.authorize("s3:DeleteObject", objectARN(c.bucket, "*"), nil); err != nil {
			return nil, err
		}
		return nil, noSuchBucket(c.bucket)
	}
	h := c.req.HTTP.Header
	if want := h.Get("Content-Md5"); want != "" {
		sum := md5.Sum(c.req.Body)
		if want != base64.StdEncoding.EncodeToString(sum[:]) {
			return nil, awsapi.Errorf("BadDigest", "The Content-MD5 you specified did not match what we received.")
		}
	}
	if err := checkCRC32(h, c.req.Body); err != nil {
		return nil, err
	}
	var in struct {
		Quiet   bool `xml:"Quiet"`
		Objects []struct {
			Key string `xml:"Key"`
		} `xml:"Object"`
	}
	if err := xml.Unmarshal(c.req.Body, &in); err != nil || len(in.Objects) == 0 || len(in.Objects) > maxDeleteKeys {
		return nil, awsapi.Errorf("MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema (1-%d Object elements)", maxDeleteKeys)
	}
	type deleted struct {
		Key string `xml:"Key"`
	}
	type failed struct {
		Key     string `xml:"Key"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	out := struct {
		XMLName xml.Name  `xml:"DeleteResult"`
		Xmlns   string    `xml:"xmlns,attr"`
		Deleted []deleted `xml:"Deleted"`
		Errors  []failed  `xml:"Error"`
	}{Xmlns: xmlns}
	for _, o := range in.Objects {
		// Each key is authorized on its own, as S3 does: a refused key is an
		// error entry, the others are deleted.
		if err := c.authorize("s3:DeleteObject", objectARN(c.bucket, o.Key), nil); err != nil {
			e := awsapi.AsError(err)
			out.Errors = append(out.Errors, failed{Key: o.Key, Code: e.Code, Message: e.Message})
			continue
		}
		if err := s.removeObject(b, o.Key); err != nil {
			s.log.Error("deleting an S3 object", "bucket", c.bucket, "key", o.Key, "err", err)
			out.Errors = append(out.Errors, failed{Key: o.Key, Code: "InternalError", Message: "We encountered an internal error. Please try again."})
			continue
		}
		if !in.Quiet {
			out.Deleted = append(out.Deleted, deleted{o.Key})
		}
	}
	return xmlResponse(out)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
