// Command bootprobe is the "image program" of the local cloud's tests: run as `bootprobe
// boot` inside an emulated instance, it does what the broker's boot agent does (IMDSv2 token,
// metadata, user data, role credentials, the data volume directory, its private IP) and
// writes what it saw as JSON into the volume, then idles until SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// instructions come from user data.
type instructions struct {
	Volume string `json:"volume"` // volume id to wait for and write to
	Marker string `json:"marker"` // appended to the volume's history
	Exit   int    `json:"exit"`   // >0: exit with this status right after booting
}

// report is written to <volume>/report-<instance id>.json.
type report struct {
	InstanceID       string   `json:"instanceId"`
	LocalIPv4        string   `json:"localIpv4"`
	AZ               string   `json:"az"`
	UserData         string   `json:"userData"`
	NoTokenStatus    int      `json:"noTokenStatus"`
	Identity         string   `json:"identity"`
	IdentityError    string   `json:"identityError,omitempty"`
	ListenedOnIP     bool     `json:"listenedOnIp"`
	History          []string `json:"history"`
	Endpoint         string   `json:"endpoint"`
	StaticCredsInEnv bool     `json:"staticCredsInEnv"`
}

func main() {
	if len(os.Args) < 2 || os.Args[1] != "boot" {
		fmt.Fprintln(os.Stderr, "usage: bootprobe boot")
		os.Exit(2)
	}
	if err := boot(); err != nil {
		fmt.Println("bootprobe: failed:", err)
		os.Exit(1)
	}
}

func boot() error {
	fmt.Println("bootprobe: booting")
	imds := strings.TrimSuffix(os.Getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT"), "/")
	req, _ := http.NewRequest(http.MethodPut, imds+"/latest/api/token", nil)
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "300")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("getting IMDS token: %w", err)
	}
	tok, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	get := func(path string, withToken bool) (string, int, error) {
		req, _ := http.NewRequest(http.MethodGet, imds+path, nil)
		if withToken {
			req.Header.Set("X-aws-ec2-metadata-token", string(tok))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", 0, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), resp.StatusCode, nil
	}
	var r report
	var status int
	if r.InstanceID, _, err = get("/latest/meta-data/instance-id", true); err != nil {
		return err
	}
	if r.LocalIPv4, _, err = get("/latest/meta-data/local-ipv4", true); err != nil {
		return err
	}
	if r.AZ, _, err = get("/latest/meta-data/placement/availability-zone", true); err != nil {
		return err
	}
	if r.UserData, status, err = get("/latest/user-data", true); err != nil {
		return err
	}
	if status != http.StatusOK {
		r.UserData = ""
	}
	if _, r.NoTokenStatus, err = get("/latest/meta-data/instance-id", false); err != nil {
		return err
	}
	r.Endpoint = os.Getenv("AWS_ENDPOINT_URL")
	r.StaticCredsInEnv = os.Getenv("AWS_ACCESS_KEY_ID") != ""
	fmt.Printf("bootprobe: instance %s at %s in %s\n", r.InstanceID, r.LocalIPv4, r.AZ)

	var in instructions
	if r.UserData != "" {
		if err := json.Unmarshal([]byte(r.UserData), &in); err != nil {
			return fmt.Errorf("decoding user data: %w", err)
		}
	}
	if in.Exit > 0 {
		os.Exit(in.Exit)
	}
	if ln, err := net.Listen("tcp", net.JoinHostPort(r.LocalIPv4, "0")); err == nil {
		r.ListenedOnIP = true
		ln.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The SDK finds the role credentials through IMDS and the endpoint through AWS_ENDPOINT_URL.
	if cfg, err := config.LoadDefaultConfig(ctx); err != nil {
		r.IdentityError = err.Error()
	} else if out, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err != nil {
		r.IdentityError = err.Error()
	} else {
		r.Identity = *out.Arn
	}

	if in.Volume != "" {
		dir := filepath.Join(os.Getenv("TRIBUTARY_VOLUME_DIR"), in.Volume)
		for {
			if st, err := os.Stat(dir); err == nil && st.IsDir() {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("volume %s never appeared in %s", in.Volume, os.Getenv("TRIBUTARY_VOLUME_DIR"))
			}
			time.Sleep(20 * time.Millisecond)
		}
		historyPath := filepath.Join(dir, "history")
		old, _ := os.ReadFile(historyPath)
		for _, l := range strings.Split(strings.TrimSpace(string(old)), "\n") {
			if l != "" {
				r.History = append(r.History, l)
			}
		}
		if err := os.WriteFile(historyPath, append(old, []byte(in.Marker+"\n")...), 0o644); err != nil {
			return err
		}
		data, _ := json.Marshal(r)
		tmp := filepath.Join(dir, ".report.tmp")
		if err := os.WriteFile(tmp, data, 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(dir, "report-"+r.InstanceID+".json")); err != nil {
			return err
		}
	}
	fmt.Println("bootprobe: ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	fmt.Println("bootprobe: stopping")
	return nil
}
