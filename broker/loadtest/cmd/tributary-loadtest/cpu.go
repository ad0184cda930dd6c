package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/tributary/tributary/broker/loadtest"
)

// The CPU rows under each throughput comparison say how much of the
// machine the phase used and what ratio the two sides' CPU costs allow:
// the client (this process) and the servers share the machine's cores, so
// a CPU-bound phase runs at cores / (client + server CPU per GiB) and the
// ratio of two CPU-bound phases is the inverse ratio of their costs,
// whatever else either side does.

// costText is "client + server = total" CPU seconds per GiB.
func costText(c loadtest.CPU) string {
	if !c.Measured() {
		return "-"
	}
	return fmt.Sprintf("%.2f + %.2f = %.2f", c.ClientPerGiB(), c.ServerPerGiB(), c.PerGiB())
}

// coresText is the cores client and server used, those every process
// used, and whether the phase was CPU-bound, or the machine was with
// other processes taking part of it (then the phase's throughput is the
// share it got, and only its CPU per GiB says what it costs).
func coresText(c loadtest.CPU, machine float64) string {
	if !c.Measured() {
		return "-"
	}
	s := fmt.Sprintf("%.2f (all %.2f)", c.Cores(), c.MachineCores())
	switch {
	case c.CPUBound(machine):
		s += " CPU-bound"
	case c.MachineCores() >= loadtest.CPUBoundShare*machine:
		s += " shared"
	}
	return s
}

// neededText says what a's client and server CPU per GiB must be at most
// for a to reach ratio times b when both are CPU-bound, and what that
// leaves a's server with a's client as it is.
func neededText(a, b loadtest.CPU, ratio float64, server string) (need, result string) {
	total, srv := loadtest.NeededPerGiB(a, b, ratio)
	if total <= 0 {
		return "-", ""
	}
	need = fmt.Sprintf("<= %.2f s/GiB, %s <= %.2f", total, server, srv)
	switch {
	case srv <= 0:
		result = "out of reach with this client"
	case loadtest.ImpliedRatio(a, b) >= ratio:
		result = "within the CPU"
	default:
		result = fmt.Sprintf("%s %.2f s/GiB over", server, a.ServerPerGiB()-srv)
	}
	return need, result
}

// cpu writes the CPU rows of a throughput comparison: each side's cost
// per GiB and cores, the throughput the machine's cores carry at that
// cost, and the ratio the costs imply beside the measured one, with the
// cost tributary needs for the target ratio (minRatio times kfake).
func (t table) cpu(phase string, trib, kfake loadtest.CPU, measured, minRatio float64) {
	server := "broker"
	if t.brokers > 1 {
		server = "brokers"
	}
	fmt.Fprintf(t.w, "%s CPU s/GiB, client + %s\t%s\t%s\t\t\t\t\n", phase, server, costText(trib), t.kf(costText(kfake)))
	fmt.Fprintf(t.w, "%s cores busy of %g, client + %s (every process)\t%s\t%s\t\t\t\t\n", phase, t.cores, server, coresText(trib, t.cores), t.kf(coresText(kfake, t.cores)))
	ceiling := func(c loadtest.CPU) string {
		if !c.Measured() {
			return "-"
		}
		return fmt.Sprintf("%.1f MiB/s", c.CeilingMiBps(t.cores))
	}
	fmt.Fprintf(t.w, "%s CPU ceiling, %g cores / s/GiB\t%s\t%s\t\t\t\t\n", phase, t.cores, ceiling(trib), t.kf(ceiling(kfake)))
	if t.skipKfake || !trib.Measured() || !kfake.Measured() {
		return
	}
	need, result := neededText(trib, kfake, minRatio, server)
	fmt.Fprintf(t.w, "%s tributary/kfake measured / if both CPU-bound; s/GiB for the target\t%s\t\t%s / %.2fx\t>= %gx kfake\t%s\t\n",
		phase, need, ratioText(measured, 1), loadtest.ImpliedRatio(trib, kfake), minRatio, result)
}

// printSecureCPU prints the CPU table under a TLS table: per transport,
// the produce and consume CPU per GiB over every round (client and
// brokers) and the cores in use, the ratio to the first transport
// (plaintext) the costs imply beside the measured one, and the cost each
// phase needs for 0.85x.
func printSecureCPU(out io.Writer, title string, cores float64, transports []transport, res secureResults) error {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "%s: CPU over every round\tproduce s/GiB, client + brokers\tcores busy of %g (every process)\tconsume s/GiB\tcores busy\tproduce vs plaintext, measured / if CPU-bound\tconsume\ts/GiB for >= 0.85x, produce / consume\t\n", title, cores)
	sum := func(rs []loadtest.Result) (produce, consume loadtest.CPU) {
		for _, r := range rs {
			produce, consume = produce.Add(r.Produce.Cost), consume.Add(r.ConsumeCost)
		}
		return produce, consume
	}
	mean := func(rs []loadtest.Result) (produce, consume float64) {
		for _, r := range rs {
			produce += r.Produce.MiBps
			consume += r.ConsumeMiBps
		}
		return produce / float64(len(rs)), consume / float64(len(rs))
	}
	plainP, plainC := sum(res[transports[0].name])
	plainPM, plainCM := mean(res[transports[0].name])
	for i, l := range transports {
		p, c := sum(res[l.name])
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t", l.label, costText(p), coresText(p, cores), costText(c), coresText(c, cores))
		if i == 0 {
			fmt.Fprintf(w, "\t\t\t\n")
			continue
		}
		pm, cm := mean(res[l.name])
		needP, _ := neededText(p, plainP, 0.85, "brokers")
		needC, _ := neededText(c, plainC, 0.85, "brokers")
		fmt.Fprintf(w, "%.2fx / %.2fx\t%.2fx / %.2fx\t%s / %s\t\n", pm/plainPM, loadtest.ImpliedRatio(p, plainP), cm/plainCM, loadtest.ImpliedRatio(c, plainC), needP, needC)
	}
	return w.Flush()
}
