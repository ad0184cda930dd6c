// Package loopback hands out loopback address blocks (127.<octet>.0.0/16) to local cloud
// emulators, so that several emulators on one machine (parallel test packages, a demo and a
// test run) never give two instances the same private IP. A block is claimed with an advisory
// file lock that the kernel releases when the process ends, so a crashed emulator frees it.
package loopback

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// FirstOctet and LastOctet bound the blocks handed out automatically; 127.0.x.x is left
// alone because ordinary local services listen on 127.0.0.1.
const (
	FirstOctet = 16
	LastOctet  = 254
)

// ErrTaken means another live process holds the block.
var ErrTaken = errors.New("loopback block already claimed by another process")

// ErrOccupied means sockets are bound in the block by processes that hold
// no claim of it: the instances of an emulator that was killed, whose
// broker processes outlived it (the claim died with the emulator, the
// grandchildren did not). Handing out the block again would give new
// instances addresses those processes still listen on.
var ErrOccupied = errors.New("loopback block has sockets of processes that hold no claim (an emulator's leftover instances?)")

// Claim is a held block; Release gives it back.
type Claim struct {
	Octet int
	f     *os.File
}

// Release frees the block.
func (c *Claim) Release() error {
	if c == nil || c.f == nil {
		return nil
	}
	err := c.f.Close() // closing the descriptor drops the flock
	c.f = nil
	return err
}

// lockDir is machine-wide: /tmp when it exists, whatever $TMPDIR a process has, so emulators
// started with different temporary directories still see each other's claims.
func lockDir() string {
	base := os.TempDir()
	if st, err := os.Stat("/tmp"); err == nil && st.IsDir() {
		base = "/tmp"
	}
	return filepath.Join(base, "tributary-localcloud-loopback")
}

// ClaimOctet claims 127.<octet>.0.0/16, or returns ErrTaken.
func ClaimOctet(octet int) (*Claim, error) {
	if octet < 1 || octet > 254 {
		return nil, fmt.Errorf("loopback octet %d out of range 1-254", octet)
	}
	if err := os.MkdirAll(lockDir(), 0o777); err != nil {
		return nil, fmt.Errorf("creating loopback lock directory: %w", err)
	}
	path := filepath.Join(lockDir(), fmt.Sprintf("127.%d.lock", octet))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("127.%d.0.0/16: %w", octet, ErrTaken)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if busy, err := occupied(octet); err == nil && busy {
		f.Close()
		return nil, fmt.Errorf("127.%d.0.0/16: %w; see `ss -tanp | grep 127.%d.`", octet, ErrOccupied, octet)
	}
	return &Claim{Octet: octet, f: f}, nil
}

// occupied reports a TCP socket of this network namespace listening on an
// address of 127.<octet>.0.0/16, from /proc/net/tcp (whose addresses are
// hex in host byte order: little endian on the machines this runs on).
// Only listening sockets: they are what a new instance's bind would
// collide with, and a closed connection's TIME_WAIT entry (no process, up
// to a minute after an emulator's clean exit) must not hold the block.
// An unreadable table says nothing.
func occupied(octet int) (bool, error) {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 4 || f[3] != "0A" { // st: 0A is LISTEN
			continue
		}
		host, _, ok := strings.Cut(f[1], ":")
		a, err := hex.DecodeString(host)
		if !ok || err != nil || len(a) != 4 {
			continue
		}
		if a[3] == 127 && int(a[2]) == octet {
			return true, nil
		}
	}
	return false, nil
}

// ClaimFree claims the first free block from FirstOctet on (neither claimed
// nor occupied).
func ClaimFree() (*Claim, error) {
	for o := FirstOctet; o <= LastOctet; o++ {
		c, err := ClaimOctet(o)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, ErrTaken) && !errors.Is(err, ErrOccupied) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("every loopback block 127.%d-%d.0.0/16 is claimed", FirstOctet, LastOctet)
}
