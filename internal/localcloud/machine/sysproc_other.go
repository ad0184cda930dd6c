//go:build !linux

package machine

import "syscall"

// sysProcAttr puts an instance in its own process group. Outside Linux there is no parent-death
// signal: instances of an emulator that is killed with SIGKILL keep running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
