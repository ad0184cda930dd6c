package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tributary/tributary/broker/loadtest"
)

// cost is a phase that moved 1 GiB in wall time with client and server
// CPU seconds.
func cost(client, server, machine, wall float64) loadtest.CPU {
	s := func(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
	return loadtest.CPU{Client: s(client), Server: s(server), Machine: s(machine), Wall: s(wall), Bytes: 1 << 30}
}

// The single-broker table's CPU rows: each side's cost per GiB, the cores
// it kept busy and whether that is the machine, the ceiling those costs
// put on each side's throughput, and the ratio they imply beside the
// measured one with the cost the target needs.
func TestPrintSingleCPURows(t *testing.T) {
	res := singleResults{
		// tributary: 2.1 + 1.2 = 3.3 s/GiB in 1.7 s, 1.94 cores of 2;
		// kfake: 2.0 + 0.8 = 2.8 s/GiB in 2 s, 1.4 cores of the 1.9
		// every process kept busy: the machine was, shared.
		trib:  loadtest.Result{Produce: loadtest.ProduceResult{MiBps: 390, Cost: cost(2.1, 1.2, 1.98, 1.7)}, ConsumeMiBps: 1000, ConsumeCost: cost(0.9, 0.2, 1.2, 1)},
		kfake: loadtest.Result{Produce: loadtest.ProduceResult{MiBps: 350, Cost: cost(2.0, 0.8, 3.8, 2)}, ConsumeMiBps: 400, ConsumeCost: cost(1.5, 1.0, 1.3, 1.25)},
	}
	var out bytes.Buffer
	if err := printSingle(&out, singleOptions{partitions: 16, cores: 2}, res); err != nil {
		t.Fatal(err)
	}
	for label, want := range map[string]string{
		"produce throughput (linger":              "390.0 MiB/s 350.0 MiB/s 1.11x >= 2x kfake not met",
		"produce: CPU s/GiB, client + broker":     "2.10 + 1.20 = 3.30 2.00 + 0.80 = 2.80",
		"produce: cores busy of 2":                "1.94 (all 1.16) CPU-bound 1.40 (all 1.90) shared",
		"produce: CPU ceiling, 2 cores / s/GiB":   "620.6 MiB/s 731.4 MiB/s",
		"produce: tributary/kfake measured":       "<= 1.40 s/GiB, broker <= -0.70 1.11x / 0.85x >= 2x kfake out of reach with this client",
		"consume: CPU s/GiB, client + broker":     "0.90 + 0.20 = 1.10 1.50 + 1.00 = 2.50",
		"consume: tributary/kfake measured":       "<= 1.25 s/GiB, broker <= 0.35 2.50x / 2.27x >= 2x kfake within the CPU",
		"consume: cores busy of 2":                "1.10 (all 1.20) 2.00 (all 1.04) CPU-bound",
		"broker RSS after the throughput runs":    "0.0 MiB -",
		"p50 / p99 / p99.9 / max, flat out":       "ms",
		"new producer's first acknowledgement":    "ms",
		"consume throughput":                      "1000.0 MiB/s 400.0 MiB/s 2.50x >= 2x kfake met",
		"produces over 100ms, flat out":           "0 of 0 0 of 0",
		"achieved at 0 MiB/s offered":             "MiB/s",
		"p50 / p99 / p99.9 / max, at 0 MiB/s":     "ms",
		"1 broker, 16 partitions, acks=all":       "tributary kfake tributary/kfake target result",
		"produce: cores busy of 2, client + brok": "CPU-bound",
	} {
		if line := rowWith(out.String(), label); !strings.Contains(line, want) {
			t.Errorf("row %q = %q, want it to hold %q", label, line, want)
		}
	}
	// A broker whose CPU falls short of the target by a known amount is
	// told by how much: 1.0 + 0.9 = 1.9 s/GiB against kfake's 2.8 at 2x
	// needs 1.4, so the broker is 0.5 s/GiB over.
	res.trib.Produce.Cost = cost(1.0, 0.9, 1.9, 1)
	out.Reset()
	if err := printSingle(&out, singleOptions{partitions: 16, cores: 2}, res); err != nil {
		t.Fatal(err)
	}
	if line := rowWith(out.String(), "produce: tributary/kfake measured"); !strings.HasSuffix(line, "<= 1.40 s/GiB, broker <= 0.40 1.11x / 1.47x >= 2x kfake broker 0.50 s/GiB over") {
		t.Errorf("row = %q", line)
	}
	// Without kfake: each side's own rows, no ratio row.
	out.Reset()
	if err := printSingle(&out, singleOptions{partitions: 16, cores: 2, skipKfake: true}, res); err != nil {
		t.Fatal(err)
	}
	if line := rowWith(out.String(), "produce: CPU s/GiB"); !strings.HasSuffix(line, "1.00 + 0.90 = 1.90 -") {
		t.Errorf("row without kfake = %q", line)
	}
	if strings.Contains(out.String(), "measured / if both CPU-bound") {
		t.Errorf("a ratio row without kfake:\n%s", out.String())
	}
}

// The three-broker table counts every broker, and its target is 1x.
func TestPrintClusterCPURows(t *testing.T) {
	res := clusterResults{full: loadtest.ProduceResult{MiBps: 300, Cost: cost(2.0, 3.0, 2, 2.5)}, kfakeFull: loadtest.ProduceResult{MiBps: 500, Cost: cost(2.0, 1.0, 2, 1.5)}}
	var out bytes.Buffer
	if err := printCluster(&out, clusterOptions{latencyRate: 20 << 20, latencyDuration: time.Minute, cores: 2}, res); err != nil {
		t.Fatal(err)
	}
	for label, want := range map[string]string{
		"produce: CPU s/GiB, client + brokers": "2.00 + 3.00 = 5.00 2.00 + 1.00 = 3.00",
		"produce: cores busy of 2":             "2.00 (all 0.80) CPU-bound 2.00 (all 1.33) CPU-bound",
		"produce: tributary/kfake measured":    "<= 3.00 s/GiB, brokers <= 1.00 0.60x / 0.60x >= 1x kfake brokers 2.00 s/GiB over",
	} {
		if line := rowWith(out.String(), label); !strings.Contains(line, want) {
			t.Errorf("row %q = %q, want it to hold %q", label, line, want)
		}
	}
}

// The TLS tables' CPU table sums the rounds and compares each transport
// with the first.
func TestPrintSecureCPU(t *testing.T) {
	round := func(pMiBps, cMiBps float64, p, c loadtest.CPU) loadtest.Result {
		return loadtest.Result{Produce: loadtest.ProduceResult{MiBps: pMiBps, Cost: p}, ConsumeMiBps: cMiBps, ConsumeCost: c}
	}
	res := secureResults{
		clusterPlaintext: {round(400, 2000, cost(1.0, 1.0, 2, 1), cost(0.5, 0.3, 1, 0.5)), round(400, 2000, cost(1.0, 1.0, 2, 1), cost(0.5, 0.3, 1, 0.5))},
		clusterTLS:       {round(300, 800, cost(1.5, 1.5, 2, 1.5), cost(1.0, 1.0, 2, 1)), round(300, 800, cost(1.5, 1.5, 2, 1.5), cost(1.0, 1.0, 2, 1))},
	}
	var out bytes.Buffer
	if err := printSecureCPU(&out, "3 brokers", 2, secureClusters, res); err != nil {
		t.Fatal(err)
	}
	for label, want := range map[string]string{
		"PLAINTEXT clients": "1.00 + 1.00 = 2.00 2.00 (all 2.00) CPU-bound 0.50 + 0.30 = 0.80 1.60 (all 2.00) shared",
		"SSL clients":       "1.50 + 1.50 = 3.00 2.00 (all 1.33) CPU-bound 1.00 + 1.00 = 2.00 2.00 (all 2.00) CPU-bound 0.75x / 0.67x 0.40x / 0.40x <= 2.35 s/GiB, brokers <= 0.85 / <= 0.94 s/GiB, brokers <= -0.06",
	} {
		if line := rowWith(out.String(), label); !strings.HasSuffix(line, want) {
			t.Errorf("row %q = %q, want it to end with %q", label, line, want)
		}
	}
}
