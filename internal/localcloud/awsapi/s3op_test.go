package awsapi

import (
	"net/url"
	"testing"
)

func TestS3Operation(t *testing.T) {
	tests := []struct {
		method, target, want string
	}{
		{"GET", "/", "ListBuckets"},
		{"PUT", "/b", "CreateBucket"},
		{"PUT", "/b/", "CreateBucket"},
		{"HEAD", "/b", "HeadBucket"},
		{"DELETE", "/b", "DeleteBucket"},
		{"GET", "/b?list-type=2&prefix=a%2F&delimiter=%2F", "ListObjectsV2"},
		{"GET", "/b?prefix=a", "ListObjects"},
		{"POST", "/b?delete", "DeleteObjects"},
		{"POST", "/b?delete=", "DeleteObjects"},
		{"PUT", "/b/k/with/slashes", "PutObject"},
		{"PUT", "/b/k?x-id=PutObject", "PutObject"},
		{"GET", "/b/k", "GetObject"},
		{"GET", "/b/k?X-Amz-Signature=x&X-Amz-Date=y", "GetObject"},
		{"HEAD", "/b/k", "HeadObject"},
		{"DELETE", "/b/k", "DeleteObject"},
		{"GET", "/b?versioning", "GET ?versioning"},
		{"PUT", "/b/k?tagging", "PUT ?tagging"},
		{"POST", "/b/k?uploads", "POST ?uploads"},
		{"POST", "/b/k", "POST /b/k"},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.target)
		if err != nil {
			t.Fatal(err)
		}
		if got := s3Operation(tt.method, u.Path, u.Query()); got != tt.want {
			t.Errorf("%s %s: %q, want %q", tt.method, tt.target, got, tt.want)
		}
	}
}
