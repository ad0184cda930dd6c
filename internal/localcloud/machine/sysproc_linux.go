package machine

import "syscall"

// sysProcAttr puts an instance in its own process group, so SIGTERM/SIGKILL reach everything it
// starts, and asks the kernel to kill it if the emulator dies without stopping it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
