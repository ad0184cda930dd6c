package awsapi

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// s3Operation names the S3 operation of a path-style request: S3 says it with the method, the
// path (/, /bucket or /bucket/key) and the sub-resource in the query, not with an Action
// parameter. A sub-resource this mapping does not know gives "<method> ?<name>", which the S3
// service answers with NotImplemented rather than mistaking it for a plain object call.
func s3Operation(method, path string, q url.Values) string {
	bucket, key, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	var sub []string
	for k := range q {
		if !s3PlainParams[k] && !strings.HasPrefix(strings.ToLower(k), "x-amz-") {
			sub = append(sub, k)
		}
	}
	sort.Strings(sub)
	switch {
	case bucket == "":
		if method == http.MethodGet && len(sub) == 0 {
			return "ListBuckets"
		}
	case key == "":
		switch {
		case method == http.MethodPost && len(sub) == 1 && sub[0] == "delete":
			return "DeleteObjects"
		case len(sub) != 0:
		case method == http.MethodPut:
			return "CreateBucket"
		case method == http.MethodHead:
			return "HeadBucket"
		case method == http.MethodDelete:
			return "DeleteBucket"
		case method == http.MethodGet && q.Get("list-type") == "2":
			return "ListObjectsV2"
		case method == http.MethodGet:
			return "ListObjects"
		}
	case len(sub) == 0:
		switch method {
		case http.MethodPut:
			return "PutObject"
		case http.MethodGet:
			return "GetObject"
		case http.MethodHead:
			return "HeadObject"
		case http.MethodDelete:
			return "DeleteObject"
		}
	}
	if len(sub) > 0 {
		return method + " ?" + sub[0]
	}
	return method + " " + path
}

// s3PlainParams are the query parameters of the operations above that are not sub-resources.
var s3PlainParams = map[string]bool{
	"list-type": true, "prefix": true, "delimiter": true, "max-keys": true, "continuation-token": true,
	"start-after": true, "encoding-type": true, "fetch-owner": true, "marker": true,
	"response-content-type": true, "response-content-disposition": true, "response-content-encoding": true,
	"response-cache-control": true, "response-expires": true, "response-content-language": true,
	"partNumber": true, "versionId": true, "x-id": true,
}
