package boot

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"unsafe"
)

// The parent-death signal across the agent's exec.
//
// A launcher that wants the instance's process gone when it dies (the local
// cloud sets SIGKILL, internal/localcloud/machine) asks the kernel for a
// parent-death signal in the child it forks. Linux keeps that setting per
// thread: the child's one thread has it, the threads the Go runtime starts
// afterwards do not, and when a thread other than the first calls execve the
// kernel keeps that thread (with no setting) and ends the others. The agent's
// exec runs on whatever thread its goroutine is on, so the broker it became
// usually lost the signal and outlived a killed emulator, holding its
// addresses and its data directory (docs/benchmarks.md, the provcert17 note).
//
// So the agent reads the setting on the main thread while the runtime still
// runs package initialisation there (it locks the main goroutine to the main
// thread until main.main), and execKeepingDeathSignal sets it again on the thread that
// calls execve, which it locks first so that the goroutine cannot move to
// another thread between the two calls. The thread stays locked: execve
// either replaces the process or fails, and then the agent exits.
var launcher = func() struct {
	deathSignal syscall.Signal
	pid         int
} {
	var sig int
	// PR_GET_PDEATHSIG writes the calling thread's setting to arg2.
	_, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_GET_PDEATHSIG, uintptr(unsafe.Pointer(&sig)), 0)
	if errno != 0 {
		sig = 0
	}
	return struct {
		deathSignal syscall.Signal
		pid         int
	}{syscall.Signal(sig), os.Getppid()}
}()

// execKeepingDeathSignal is syscall.Exec that keeps the launcher's
// parent-death signal for the program it starts. When the launcher died
// before the setting was made again (the kernel would have sent the signal
// to a thread that has it), it refuses: the process would otherwise run
// with no one to stop it.
func execKeepingDeathSignal(argv0 string, argv, envv []string) error {
	runtime.LockOSThread()
	if sig := launcher.deathSignal; sig != 0 {
		if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(sig), 0); errno != 0 {
			return fmt.Errorf("setting the parent-death signal %v for the broker: %w", sig, errno)
		}
		if os.Getppid() != launcher.pid {
			return fmt.Errorf("the process that started the agent (pid %d) has ended, and asked for %v when it did: not starting the broker", launcher.pid, sig)
		}
	}
	return syscall.Exec(argv0, argv, envv)
}
