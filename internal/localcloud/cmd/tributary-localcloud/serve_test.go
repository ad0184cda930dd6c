package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// TestMain lets the test binary act as the command, so TestServeStopsInstancesOnSIGTERM can run
// `tributary-localcloud serve` as a real process and signal it.
func TestMain(m *testing.M) {
	if os.Getenv("TRIBUTARY_LOCALCLOUD_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestServeStopsInstancesOnSIGTERM(t *testing.T) {
	addr := freeAddr(t)
	endpoint := "http://" + addr
	cmd := exec.Command(os.Args[0], "serve", "--listen", addr, "--state-dir", t.TempDir(), "--stop-grace", "2s", "--log-level", "warn")
	cmd.Env = append(os.Environ(), "TRIBUTARY_LOCALCLOUD_RUN_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(endpoint + "/_localcloud/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the local cloud did not come up: %v\n%s", err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// An image whose program is a long sleep, and an instance of it.
	body, _ := json.Marshal(map[string]any{"binary": "/bin/sh", "name": "sleeper", "args": []string{"-c", "sleep 600"}})
	resp, err := http.Post(endpoint+"/_localcloud/images", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var img struct{ ImageID string }
	if err := json.NewDecoder(resp.Body).Decode(&img); err != nil || img.ImageID == "" {
		t.Fatalf("registering the image: %v %+v", err, img)
	}
	resp.Body.Close()
	client := ec2.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
	run, err := client.RunInstances(context.Background(), &ec2.RunInstancesInput{ImageId: aws.String(img.ImageID), MinCount: aws.Int32(1), MaxCount: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(run.Instances[0].InstanceId)
	var pid int
	deadline = time.Now().Add(20 * time.Second)
	for pid == 0 {
		var list struct {
			Instances []struct {
				InstanceID string `json:"instanceId"`
				PID        int    `json:"pid"`
			}
		}
		var out bytes.Buffer
		if err := listInstances(endpoint, &out); err == nil && json.Unmarshal(out.Bytes(), &list) == nil {
			for _, i := range list.Instances {
				if i.InstanceID == id {
					pid = i.PID
				}
			}
		}
		if pid == 0 && time.Now().After(deadline) {
			t.Fatalf("instance %s never got a process", id)
		}
		time.Sleep(20 * time.Millisecond)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("serve exited with %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not exit after SIGTERM")
	}
	if syscall.Kill(pid, 0) == nil {
		t.Fatalf("instance process %d outlived the emulator", pid)
	}
}

// listInstances lists the instances through the command's own client code.
func listInstances(endpoint string, out *bytes.Buffer) error {
	err := run(context.Background(), []string{"instances", "--endpoint", endpoint}, out, &bytes.Buffer{})
	if err != nil && strings.Contains(err.Error(), "connection refused") {
		return errors.New("not up")
	}
	if err != nil {
		return fmt.Errorf("listing instances: %w", err)
	}
	return nil
}
