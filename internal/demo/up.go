package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// up starts the local cloud, applies examples/local, then produces and
// consumes through the cluster and prints how to reach it.
func (d *demo) up(ctx context.Context) error {
	if err := os.MkdirAll(d.cache, 0o755); err != nil {
		return err
	}
	if err := d.startCloud(ctx); err != nil {
		return err
	}
	if err := d.prepareFirehose(ctx); err != nil {
		return err
	}
	if err := d.prepareTerraform(); err != nil {
		return err
	}

	d.say("terraform apply (examples/local, provider from ./bin)")
	applyStart := time.Now()
	if err := d.applyWithProgress(ctx, append([]string{"apply", "-auto-approve"}, tfVars()...)...); err != nil {
		return err
	}
	applied := time.Since(applyStart)

	outs, err := d.outputs(ctx)
	if err != nil {
		return err
	}
	var bootstrap, caPEM, clusterID string
	if err := json.Unmarshal(outs["bootstrap_brokers_sasl_iam"], &bootstrap); err != nil || bootstrap == "" {
		return fmt.Errorf("no bootstrap_brokers_sasl_iam output (%v)", err)
	}
	if err := json.Unmarshal(outs["certificate_authority_pem"], &caPEM); err != nil || caPEM == "" {
		return fmt.Errorf("no certificate_authority_pem output (%v)", err)
	}
	if err := json.Unmarshal(outs["cluster_id"], &clusterID); err != nil || clusterID == "" {
		return fmt.Errorf("no cluster_id output (%v)", err)
	}
	// Clients trust the cluster's CA, from a file as kcat reads it.
	caFile := filepath.Join(d.cache, "ca.pem")
	if err := os.WriteFile(caFile, []byte(caPEM), 0o644); err != nil {
		return err
	}
	if err := connectAs(caPEM, clusterID); err != nil {
		return err
	}
	brokers := strings.Split(bootstrap, ",")
	var topicName string
	if err := json.Unmarshal(outs["topic"], &topicName); err != nil || topicName != topic {
		return fmt.Errorf("the topic output is %q, want %q (%v)", topicName, topic, err)
	}
	if err := checkCluster(ctx, brokers); err != nil {
		return err
	}
	runID := fmt.Sprintf("run%d", time.Now().Unix())
	d.say("producing %d records with acks=all to topic %q, which the apply created, through the IAM listener (port 9098)", records, topic)
	first, err := produce(ctx, brokers, runID)
	if err != nil {
		return fmt.Errorf("producing: %w", err)
	}
	n, err := consume(ctx, brokers, runID)
	if err != nil {
		return fmt.Errorf("consuming: %w", err)
	}
	d.say("consumed all %d records back", n)
	kcat := d.kcatCommand(bootstrap, caFile, clusterID)
	switch n, err := checkKcat(ctx, kcat, runID); {
	case errors.Is(err, errKcatMissing):
		d.say("skipping the kcat check: %v", err)
	case err != nil:
		return err
	default:
		d.say("kcat read all %d records back with an IAM token of tributary-broker iam-token", n)
	}
	if err := d.showLogs(ctx, len(brokers)); err != nil {
		return err
	}
	if err := d.showFirehose(ctx, len(brokers)); err != nil {
		return err
	}
	if err := d.showAlarms(ctx); err != nil {
		return err
	}

	fmt.Println()
	fmt.Println("Tributary demo cluster is up.")
	fmt.Printf("  bootstrap brokers:  %s (SASL_SSL, IAM)\n", bootstrap)
	fmt.Printf("  identity:           the local cloud's test/test credentials, its account's root user\n")
	fmt.Printf("  kcat:               %s\n", kcat)
	fmt.Printf("  audit trail:        %s\n", auditCommand())
	fmt.Printf("  apply took:         %s\n", applied.Round(10*time.Millisecond))
	fmt.Printf("  apply to 1st record: %s (target: under 20s)\n", first.Sub(applyStart).Round(10*time.Millisecond))
	fmt.Printf("  state:              %s (make demo-down removes it all)\n", rel(d.root, d.cache))
	return nil
}

// down destroys the cluster (while the local cloud still runs), stops the
// local cloud and removes the demo's files.
func (d *demo) down(ctx context.Context) error {
	if _, running := d.cloudPID(); running {
		if _, err := os.Stat(d.tfDir); err == nil {
			if err := d.prepareTerraform(); err != nil {
				return err
			}
			d.say("terraform destroy")
			if err := d.applyWithProgress(ctx, append([]string{"destroy", "-auto-approve"}, tfVars()...)...); err != nil {
				return fmt.Errorf("%w (the local cloud is still running; fix and rerun `make demo-down`)", err)
			}
		}
	}
	if err := d.stopCloud(ctx); err != nil {
		return err
	}
	if err := os.RemoveAll(d.cache); err != nil {
		return fmt.Errorf("removing %s: %w", rel(d.root, d.cache), err)
	}
	d.say("demo removed")
	return nil
}

// tfVars are the variables of examples/local for this machine.
func tfVars() []string {
	// Sizes Amazon MSK also offers (kafka.m5.large, kafka.m7g.large), so
	// the plan prints both cost estimates.
	instanceType := "m5.large"
	if runtime.GOARCH == "arm64" {
		instanceType = "m7g.large" // the local cloud registers images of this machine's architecture
	}
	return []string{"-var", "endpoint=" + endpoint, "-var", "broker_version=" + brokerVersion, "-var", "instance_type=" + instanceType,
		"-var", "logs_delivery_stream=" + logsStream}
}
