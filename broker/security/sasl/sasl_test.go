package sasl

import (
	"errors"
	"fmt"
	"testing"
)

type publicErr struct{ msg string }

func (e publicErr) Error() string         { return "internal detail: " + e.msg }
func (e publicErr) ClientMessage() string { return e.msg }

func TestClientMessage(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{errors.New("user bob has no credential"), GenericFailure},
		{publicErr{"token expired"}, "token expired"},
		{fmt.Errorf("login: %w", publicErr{"token expired"}), "token expired"},
	}
	for _, tt := range tests {
		if got := ClientMessage(tt.err); got != tt.want {
			t.Errorf("ClientMessage(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
