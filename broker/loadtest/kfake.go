package loadtest

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// KfakeCommand is the argument that makes the benchmark command serve
// kfake instead of measuring (see ServeKfake).
const KfakeCommand = "kfake"

const kfakeReadyPrefix = "kfake listening on "

// KfakeProcess is franz-go's in-memory kfake cluster in a process of its
// own, so that it pays the same loopback and scheduling costs as a broker
// process: measured in the benchmark's own process it would share the
// producer's Go scheduler and skip the process switches a real broker
// costs.
type KfakeProcess struct {
	// Addrs are the brokers' listen addresses.
	Addrs []string
	cmd   *exec.Cmd
	stdin io.Closer
	done  chan struct{}
}

// StartKfake runs `bin kfake -brokers n [-topic t -partitions p]` (bin is
// a binary whose main calls ServeKfake for that argument, the benchmark
// command itself) and waits for its addresses.
func StartKfake(ctx context.Context, bin string, brokers int, topic string, partitions int32) (*KfakeProcess, error) {
	args := []string{KfakeCommand, "-brokers", fmt.Sprint(brokers)}
	if topic != "" {
		args = append(args, "-topic", topic, "-partitions", fmt.Sprint(partitions))
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	// The child exits when its stdin closes: when Close closes it, and
	// when this process dies for any reason.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting kfake (%s): %w", bin, err)
	}
	k := &KfakeProcess{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	addrs := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), kfakeReadyPrefix); ok {
				addrs <- strings.Split(rest, ",")
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(k.done)
	}()
	select {
	case k.Addrs = <-addrs:
		return k, nil
	case <-k.done:
		return nil, errors.New("kfake exited before listening")
	case <-ctx.Done():
		k.Close()
		return nil, fmt.Errorf("kfake did not start: %w", ctx.Err())
	}
}

// PID is the kfake process's id.
func (k *KfakeProcess) PID() int { return k.cmd.Process.Pid }

// Close stops the kfake process and waits for it.
func (k *KfakeProcess) Close() {
	_ = k.stdin.Close()
	select {
	case <-k.done:
	case <-time.After(5 * time.Second):
		_ = k.cmd.Process.Kill()
		<-k.done
	}
}

// ServeKfake is the child side of StartKfake: it parses args (-brokers,
// -topic, -partitions), starts a kfake cluster on loopback, prints its
// addresses to stdout and serves until stdin reaches its end or the
// process is signalled.
func ServeKfake(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet(KfakeCommand, flag.ContinueOnError)
	brokers := fs.Int("brokers", 1, "number of kfake brokers")
	topic := fs.String("topic", "", "a topic to create at start (none: clients create topics)")
	partitions := fs.Int("partitions", 1, "partitions of -topic")
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts := []kfake.Opt{kfake.NumBrokers(*brokers)}
	if *topic != "" {
		opts = append(opts, kfake.SeedTopics(int32(*partitions), *topic))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("starting kfake: %w", err)
	}
	defer c.Close()
	if _, err := fmt.Fprintln(stdout, kfakeReadyPrefix+strings.Join(c.ListenAddrs(), ",")); err != nil {
		return err
	}
	ended := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		close(ended)
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	select {
	case <-ended:
	case <-sig:
	}
	return nil
}
