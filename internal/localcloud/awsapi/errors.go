package awsapi

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is an AWS API error: the code and message a client sees, the HTTP status, and whether the
// caller (Sender) or the service (Receiver) is at fault. Services return it from Handle; the
// server renders it in the request's protocol (query XML, EC2 XML, JSON or CBOR).
type Error struct {
	Code    string // e.g. "InvalidInstanceID.NotFound", "NotFoundException"
	Message string
	Status  int  // HTTP status; 400 when zero
	Server  bool // a Receiver (service-side) fault rather than a Sender fault
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// HTTPStatus is the status to send, 400 when the error does not name one.
func (e *Error) HTTPStatus() int {
	if e.Status == 0 {
		if e.Server {
			return http.StatusInternalServerError
		}
		return http.StatusBadRequest
	}
	return e.Status
}

// Errorf makes a client (Sender) error with status 400.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorfStatus makes a client error with an explicit HTTP status.
func ErrorfStatus(status int, code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Status: status}
}

// AsError returns err as an *Error; an error that is not one becomes an internal failure, so a
// Go bug never leaks as a half-written response.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: "InternalFailure", Message: "The request processing has failed because of an unknown error, exception or failure.", Server: true}
}

// authFailure is a kind of authentication failure; its code depends on the protocol, as AWS's
// services name the same failure differently (SignatureDoesNotMatch vs InvalidSignatureException).
type authFailure int

const (
	authMissing      authFailure = iota // no Authorization header or presigned query
	authIncomplete                      // malformed Authorization / missing parts
	authUnknownKey                      // access key (or its session token) not known
	authBadSignature                    // computed signature differs
	authExpiredToken                    // temporary credential past its expiration
	authSkew                            // request time too far from now, or presigned URL expired
)

// authError renders an authentication failure the way the given protocol's services do.
func authError(kind authFailure, p Protocol, detail string) *Error {
	json := p == ProtocolJSON
	ec2 := p == ProtocolEC2
	if p == ProtocolRESTXML {
		switch kind {
		case authMissing:
			return &Error{Code: "AccessDenied", Message: "Access Denied", Status: http.StatusForbidden}
		case authIncomplete:
			return &Error{Code: "AuthorizationHeaderMalformed", Message: detail, Status: http.StatusBadRequest}
		case authUnknownKey:
			return &Error{Code: "InvalidAccessKeyId", Message: "The AWS Access Key Id you provided does not exist in our records.", Status: http.StatusForbidden}
		case authExpiredToken:
			return &Error{Code: "ExpiredToken", Message: "The provided token has expired.", Status: http.StatusBadRequest}
		case authSkew:
			return &Error{Code: "RequestTimeTooSkewed", Message: "The difference between the request time and the current time is too large. " + detail, Status: http.StatusForbidden}
		}
	}
	switch kind {
	case authMissing:
		code := "MissingAuthenticationToken"
		if json {
			code = "MissingAuthenticationTokenException"
		}
		return &Error{Code: code, Message: "Request is missing Authentication Token", Status: http.StatusForbidden}
	case authIncomplete:
		code := "IncompleteSignature"
		if json {
			code = "IncompleteSignatureException"
		}
		return &Error{Code: code, Message: detail, Status: http.StatusForbidden}
	case authUnknownKey:
		switch {
		case json:
			return &Error{Code: "UnrecognizedClientException", Message: "The security token included in the request is invalid.", Status: http.StatusBadRequest}
		case ec2:
			return &Error{Code: "AuthFailure", Message: "AWS was not able to validate the provided access credentials", Status: http.StatusUnauthorized}
		}
		return &Error{Code: "InvalidClientTokenId", Message: "The security token included in the request is invalid.", Status: http.StatusForbidden}
	case authExpiredToken:
		code := "ExpiredToken"
		if json {
			code = "ExpiredTokenException"
		}
		return &Error{Code: code, Message: "The security token included in the request is expired", Status: http.StatusForbidden}
	case authSkew:
		if ec2 {
			return &Error{Code: "RequestExpired", Message: "Request has expired. " + detail, Status: http.StatusBadRequest}
		}
		code := "SignatureDoesNotMatch"
		if json {
			code = "InvalidSignatureException"
		}
		return &Error{Code: code, Message: detail, Status: http.StatusForbidden}
	default: // authBadSignature
		code := "SignatureDoesNotMatch"
		if json {
			code = "InvalidSignatureException"
		}
		return &Error{Code: code, Message: "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.", Status: http.StatusForbidden}
	}
}
