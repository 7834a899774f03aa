// Command fotabench measures fotagate's device protocol side by side with HTTPS (TLS 1.3),
// CoAP Block2 over DTLS 1.2 and plain TCP: the same image over the same link in one run, at
// every chunk size, on every link profile, and writes bench/RESULTS.md with its charts.
//
//	fotabench --smoke                              # every peer once on loopback; exit 1 if one fails
//	fotabench --profiles loopback,2mbit-50ms       # a sweep; see bench/README.md
//	fotabench --profiles '' --sweep 1,10,100,1000,10000   # the concurrency sweep alone
//	fotabench --render bench/results.json          # RESULTS.md and charts again, from an earlier run
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fotagate/fotagate/bench/harness"
	"github.com/fotagate/fotagate/bench/link"
	"github.com/fotagate/fotagate/bench/peers"
	"github.com/fotagate/fotagate/bench/report"
)

func main() {
	if harness.IsChild() {
		os.Exit(harness.ChildMain(os.Args[1:]))
	}
	os.Exit(run())
}

func run() int {
	var allProfiles, allPeers, allChunks []string
	for _, p := range link.Profiles {
		allProfiles = append(allProfiles, p.Name)
	}
	for _, p := range peers.All() {
		allPeers = append(allPeers, p.Name())
	}
	for _, c := range harness.DefaultChunks {
		allChunks = append(allChunks, strconv.Itoa(c))
	}
	smoke := flag.Bool("smoke", false, "run every peer once on loopback (512 B chunks, 128 KiB image) and 10 devices at once against one gateway; exit 1 if any fails")
	profiles := flag.String("profiles", strings.Join(allProfiles, ","), "link profiles to run")
	peerList := flag.String("peers", strings.Join(allPeers, ","), "peers to run")
	chunks := flag.String("chunks", strings.Join(allChunks, ","), "chunk sizes in bytes")
	size := flag.Int("image-size", 1<<20, "image size in bytes")
	reps := flag.Int("reps", 3, "transfers per cell (medians are reported)")
	seed := flag.Uint64("seed", 1, "seed of the random image")
	linkMode := flag.String("link", harness.LinkAuto, "how emulated links are made: auto (namespaces as root, else proxies), netns or proxy")
	out := flag.String("out", "bench", "directory for RESULTS.md and charts/ (empty: write none; a smoke run writes none unless set)")
	jsonFile := flag.String("json", "", "write every cell and sample as JSON to this file")
	timeout := flag.Duration("timeout", 30*time.Minute, "time limit of one transfer")
	maxRep := flag.Duration("max-rep-time", 30*time.Second, "after a transfer slower than this, do not repeat that cell")
	prefixBlocks := flag.Int("prefix-blocks", harness.DefaultPrefixBlocks, "on emulated links, stop a stop-and-wait peer's device (coap-dtls) after this many blocks and scale its time to the image; such cells are marked (0: whole images)")
	parallel := flag.Int("parallel", 1, "run up to this many emulated link profiles side by side, after the loopback ones (which run alone); each has its own namespaces, link and children")
	estimate := flag.Bool("estimate", false, "measure nothing: print the run's estimated time (with --time-budget, --parallel and --prefix-blocks applied) and exit")
	timeBudget := flag.Duration("time-budget", 0, "give the cells with the slowest transfers fewer than --reps transfers until the estimated run fits in this (0: no budget); the estimate is printed at the start")
	profileDir := flag.String("cpuprofile-dir", "", "write a CPU profile of each server process (and each sweep step's gateway) into this directory")
	sweep := flag.String("sweep", "", "device counts of the concurrency sweep, e.g. "+joinInts(harness.DefaultSweep)+" (empty: none)")
	sweepImage := flag.Int("sweep-image-size", 0, "image size of every sweep step (0: 1 MiB, less at large steps so a step moves at most 320 MiB)")
	cSize := flag.Bool("c-size-report", false, "measure nothing: run devicelib/c/tools/size-report.sh for every chunk size and write bench/peers/device-size.txt (run from the repository root)")
	render := flag.String("render", "", "measure nothing: write RESULTS.md and charts/ from this JSON file of an earlier run (device RAM from this build)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: fotabench [flags]\n\nProfiles: %s\nPeers: %s\n\n",
			strings.Join(allProfiles, ", "), strings.Join(allPeers, ", "))
		flag.PrintDefaults()
	}
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })

	if *cSize {
		if err := harness.WriteCSizeReport(".", harness.DefaultChunks); err != nil {
			fmt.Fprintln(os.Stderr, "fotabench:", err)
			return 1
		}
		fmt.Fprintln(os.Stderr, "wrote bench/peers/device-size.txt; rebuild fotabench to use it")
		return 0
	}
	if *render != "" {
		res, err := report.ReadJSON(*render)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fotabench:", err)
			return 1
		}
		// The measurements and the peers' descriptions (how they ran then) come from the file;
		// the device RAM, which no run measures, from this build.
		for i, pi := range res.Peers {
			if p, err := peers.Lookup(pi.Name); err == nil {
				res.Peers[i].RAM = harness.PeerInfos([]peers.Peer{p}, res.Chunks)[0].RAM
			}
		}
		res.Rendered, res.RenderedAt = "fotabench "+strings.Join(os.Args[1:], " "), time.Now().UTC()
		if err := res.WriteFiles(*out); err != nil {
			fmt.Fprintln(os.Stderr, "fotabench: writing results:", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "wrote %s/RESULTS.md and %s/charts/ from %s\n", *out, *out, *render)
		return 0
	}

	plan := harness.Plan{ImageSize: *size, Seed: *seed, Reps: *reps, Link: *linkMode, Timeout: *timeout, MaxRepTime: *maxRep,
		PrefixBlocks: *prefixBlocks, TimeBudget: *timeBudget, Parallel: *parallel}
	if *smoke {
		plan = harness.SmokePlan()
		plan.Link = *linkMode
		if !set["out"] {
			*out = ""
		}
	} else {
		for _, name := range split(*profiles) {
			p, err := link.Lookup(name)
			if err != nil {
				return usage(err)
			}
			plan.Profiles = append(plan.Profiles, p)
		}
		for _, name := range split(*peerList) {
			p, err := peers.Lookup(name)
			if err != nil {
				return usage(err)
			}
			plan.Peers = append(plan.Peers, p)
		}
		for _, s := range split(*chunks) {
			c, err := strconv.Atoi(s)
			if err != nil || c <= 0 {
				return usage(fmt.Errorf("chunk size %q is not a positive number", s))
			}
			plan.Chunks = append(plan.Chunks, c)
		}
		for _, s := range split(*sweep) {
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 || n > 50000 {
				return usage(fmt.Errorf("sweep step %q is not a device count of 1 to 50,000", s))
			}
			plan.Sweep = append(plan.Sweep, n)
		}
		plan.SweepImage = *sweepImage
	}
	plan.Command = "fotabench " + strings.Join(os.Args[1:], " ")
	if *profileDir != "" {
		if err := os.MkdirAll(*profileDir, 0o755); err != nil {
			return usage(err)
		}
		abs, err := filepath.Abs(*profileDir) // children may run with another working directory
		if err != nil {
			return usage(err)
		}
		plan.ProfileDir = abs
	}
	plan.Progress = os.Stderr
	if *estimate {
		e := plan.Estimate()
		fmt.Printf("estimate: %s\n", e)
		if plan.TimeBudget > 0 {
			fmt.Printf("time budget %v: %d slow cell(s) get fewer than %d transfers\n", plan.TimeBudget, e.Reduced, plan.Reps)
		}
		return 0
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := harness.Run(ctx, plan)
	if res == nil {
		fmt.Fprintln(os.Stderr, "fotabench:", err)
		return 1
	}
	fmt.Fprintln(os.Stdout)
	res.Terminal(os.Stdout)
	code := 0
	if err != nil {
		fmt.Fprintln(os.Stderr, "fotabench:", err)
		code = 1
	}
	if *out != "" {
		if werr := res.WriteFiles(*out); werr != nil {
			fmt.Fprintln(os.Stderr, "fotabench: writing results:", werr)
			code = 1
		} else {
			fmt.Fprintf(os.Stderr, "wrote %s/RESULTS.md and %s/charts/\n", *out, *out)
		}
	}
	if *jsonFile != "" {
		if werr := res.WriteJSON(*jsonFile); werr != nil {
			fmt.Fprintln(os.Stderr, "fotabench: writing JSON:", werr)
			code = 1
		}
	}
	if f := harness.Failures(res); len(f) > 0 {
		fmt.Fprintf(os.Stderr, "fotabench: %d cell(s) failed:\n  %s\n", len(f), strings.Join(f, "\n  "))
		code = 1
	}
	return code
}

func joinInts(v []int) string {
	var s []string
	for _, x := range v {
		s = append(s, strconv.Itoa(x))
	}
	return strings.Join(s, ",")
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func usage(err error) int {
	fmt.Fprintln(os.Stderr, "fotabench:", err)
	flag.Usage()
	return 2
}
