package peers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fotagate/fotagate/devicelib"
	"github.com/fotagate/fotagate/gateway/registry"
)

// FotagateC is fotagate's protocol with the C device: the same server side as Fotagate (the
// real gateway/server, the same meter), and as the device devicelib/c's posix port,
// fotadev-c, built with gcc at the Makefile's -O2 (no sanitizers) and run as a subprocess of
// the device child, so on an emulated link it runs in the device's namespace like the Go
// device. It Acks every devicelib.DefaultAckEvery bytes, as the Go device does, so the two
// differ by their implementation only.
type FotagateC struct{}

// cBuilds are the compiled chunk limits (FOTA_MAX_PAYLOAD) devicelib/c's Makefile builds
// fotadev-c for: its PAYLOADS.
var cBuilds = []int{64, 256, 512, 1024, 4096}

// cBuildFor is the fotadev-c build that serves a chunk size: the smallest compiled limit that
// holds it. The device announces the chunk itself (--max-payload) when it is below the
// build's limit, so a 128-byte chunk runs on fotadev-c-256 with a 256-byte frame buffer that
// the run does not use; only the device RAM differs from a build of its own, and the RAM
// table takes that from the size report at the chunk itself. ok is false above the largest.
func cBuildFor(chunk int) (build int, announce bool, ok bool) {
	for _, b := range cBuilds {
		if chunk <= b {
			return b, chunk != b, true
		}
	}
	return 0, false, false
}

// fotadevDirEnv hands the build directory to the device child (ClientEnv), so the child
// runs the binaries the harness built and never runs make itself.
const fotadevDirEnv = "FOTABENCH_FOTADEV_C_DIR"

func (FotagateC) Name() string    { return "fotagate-c" }
func (FotagateC) Network() string { return "tcp" }
func (FotagateC) About() string {
	return "fotagate protocol from the real gateway/server, as `fotagate`, to the C device: devicelib/c's posix port " +
		"(fotadev-c-N, gcc -O2, N the smallest compiled chunk limit of 64/256/512/1024/4096 that holds the chunk; " +
		"below it the device announces the chunk with --max-payload); Acks every " + sizeName(devicelib.DefaultAckEvery) +
		" like the Go device; its slot and state files are on tmpfs (/dev/shm), as the Go device's are in memory. Times are the device's own " +
		"(fotadev-c --json: from just before its dial to its first and its last image byte stored), as the Go device counts them. On loopback the port's file flash (a pread and a pwrite per program, " +
		"as it keeps NOR rules) is most of the device's time. Under +flash, fotadev-c's --flash-timing charges the slot's " +
		"erases and pages and an erase and a page per state save, as the Go device here is charged"
}

func (FotagateC) ClientEnv() []string {
	dir, err := fotadevBuildDir()
	if err != nil {
		return nil
	}
	return []string{fotadevDirEnv + "=" + dir}
}

// Check also builds the needed fotadev-c (make is the cache: a built binary costs one make
// call that finds it up to date). Without gcc or make, or when the build fails, the peer is
// unavailable at that chunk and says why; the smoke counts such a cell as a failure.
func (p FotagateC) Check(chunk int) error {
	if err := (Fotagate{}).Check(chunk); err != nil {
		return err
	}
	build, _, ok := cBuildFor(chunk)
	if !ok {
		return fmt.Errorf("%w: no fotadev-c build holds %d-byte chunks", ErrChunkUnsupported, chunk)
	}
	if _, err := fotadevBinary(build); err != nil {
		return fmt.Errorf("%w: C device unavailable: %v", ErrChunkUnsupported, err)
	}
	return nil
}

func (FotagateC) DeviceRAM(chunk int) RAM { return Fotagate{}.DeviceRAM(chunk) }

func (FotagateC) Serve(addr string, img []byte, m *Meter) (Server, error) {
	return Fotagate{}.Serve(addr, img, m)
}

// cResult is the part of fotadev-c's --json output the bench checks.
type cResult struct {
	Outcome  string `json:"outcome"`
	Seq      uint32 `json:"seq"`
	Size     uint32 `json:"size"`
	Received uint32 `json:"received"`
	Reason   string `json:"reason"`
	// Seconds from just before the device's dial to its first and its last image byte
	// stored: the device's own clock, as the Go device's figures are.
	FirstByte float64 `json:"first_byte_s"`
	LastByte  float64 `json:"last_byte_s"`
}

// Fetch runs fotadev-c once against the gateway with a fresh key file, slot and state in a
// temporary directory, and returns the slot's first image-size bytes: the harness compares
// their SHA-256 with the image's.
func (FotagateC) Fetch(ctx context.Context, f FetchConfig) (Fetched, error) {
	build, announce, ok := cBuildFor(f.Chunk)
	if !ok {
		return Fetched{}, fmt.Errorf("fotagate-c: no build holds %d-byte chunks", f.Chunk)
	}
	bin, err := fotadevBinary(build)
	if err != nil {
		return Fetched{}, err
	}
	dir, err := os.MkdirTemp(memDir(), "fotadev-c-")
	if err != nil {
		return Fetched{}, err
	}
	defer os.RemoveAll(dir)
	key := filepath.Join(dir, "device.json")
	if err := registry.WriteKeyFile(key, registry.Device{ID: benchDevice, Class: benchClass, PSK: registry.Key(benchPSK)}); err != nil {
		return Fetched{}, err
	}
	slot := filepath.Join(dir, "slot")
	args := []string{"--gateway", f.Addr, "--key", key, "--flash", slot, "--state", filepath.Join(dir, "state"),
		"--slot-size", strconv.FormatInt(f.slotSize(), 10), "--ack-every", strconv.Itoa(devicelib.DefaultAckEvery),
		"--timeout", "60", "--json"}
	if announce {
		args = append(args, "--max-payload", strconv.Itoa(f.Chunk))
	}
	if f.FlashTiming {
		args = append(args, "--flash-timing")
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	runErr := cmd.Run()
	elapsed := time.Since(start)
	var r cResult
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return Fetched{}, fmt.Errorf("fotagate-c: %s: %v, output %q: %s", filepath.Base(bin), errors.Join(runErr, err), stdout.String(), strings.TrimSpace(stderr.String()))
	}
	if runErr != nil || r.Outcome != "installed" || r.Seq != benchSeq || r.Received != r.Size {
		return Fetched{}, fmt.Errorf("fotagate-c: %s: %v, outcome %s (%s), image %d, received %d of %d: %s",
			filepath.Base(bin), runErr, r.Outcome, r.Reason, r.Seq, r.Received, r.Size, strings.TrimSpace(stderr.String()))
	}
	img, err := os.ReadFile(slot)
	if err != nil {
		return Fetched{}, err
	}
	if int(r.Size) > len(img) {
		return Fetched{}, fmt.Errorf("fotagate-c: slot of %d bytes for a %d-byte image", len(img), r.Size)
	}
	if r.LastByte <= 0 || r.FirstByte <= 0 || r.FirstByte > r.LastByte || r.LastByte > elapsed.Seconds() {
		return Fetched{}, fmt.Errorf("fotagate-c: timings %.6f s to the first byte and %.6f s to the last, within a run of %v", r.FirstByte, r.LastByte, elapsed)
	}
	return Fetched{Image: img[:r.Size], Elapsed: seconds(r.LastByte), FirstByte: seconds(r.FirstByte)}, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// memDir is where fotadev-c's slot and state files go: tmpfs when the machine has one, where
// the port's fsync at every durable point costs nothing, as the Go device's MemFlash and
// MemStore cost nothing; on a disk each fsync would add milliseconds no device flash takes
// (flash time is --flash-timing's job).
func memDir() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		return "/dev/shm"
	}
	return ""
}

// fotadevBuildDir is where the bench builds fotadev-c: the harness's child gets it from the
// environment, everything else uses the user's cache directory, so a later run finds the
// binaries built. Each source tree has a directory of its own there: make judges a binary by
// timestamps only, so two checkouts sharing one would run each other's device code.
func fotadevBuildDir() (string, error) {
	if dir := os.Getenv(fotadevDirEnv); dir != "" {
		return dir, nil
	}
	src, err := cSourceDir()
	if err != nil {
		return "", err
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	tree := sha256.Sum256([]byte(src))
	return filepath.Join(base, "fotabench", "fotadev-c", hex.EncodeToString(tree[:6])), nil
}

// fotadevBinary builds fotadev-c-<build> if it is missing or older than its sources and
// returns its path. Runs of the bench and test binaries may build at once: a lock on the
// build directory keeps their makes apart.
func fotadevBinary(build int) (string, error) {
	dir, err := fotadevBuildDir()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, fmt.Sprintf("fotadev-c-%d", build))
	if os.Getenv(fotadevDirEnv) != "" {
		// The device child: the harness built it.
		if _, err := os.Stat(bin); err != nil {
			return "", fmt.Errorf("fotadev-c not built: %w", err)
		}
		return bin, nil
	}
	src, err := cSourceDir()
	if err != nil {
		return "", err
	}
	for _, tool := range []string{"make", cCompiler()} {
		if _, err := exec.LookPath(tool); err != nil {
			return "", fmt.Errorf("cannot build fotadev-c: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return "", err
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN) //nolint:errcheck // Close unlocks too
	// FOTADEV_CFLAGS empty: the Makefile's -O2 build, without the interop tests' sanitizers,
	// whatever the environment says.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "-s", "-C", src, "BUILD="+dir, "FOTADEV_CFLAGS=", bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("make %s: %v: %s", filepath.Base(bin), err, lastLines(string(out), 8))
	}
	return bin, nil
}

// cCompiler is the compiler devicelib/c's Makefile runs: $CC if set, else gcc.
func cCompiler() string {
	if cc := os.Getenv("CC"); cc != "" {
		return strings.Fields(cc)[0]
	}
	return "gcc"
}

// cSourceDir finds devicelib/c: beside this source file when it was compiled here (go run,
// go test), else above the working directory.
func cSourceDir() (string, error) {
	var tries []string
	if _, file, _, ok := runtime.Caller(0); ok {
		tries = append(tries, filepath.Join(filepath.Dir(file), "..", "..", "devicelib", "c"))
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			tries = append(tries, filepath.Join(d, "devicelib", "c"))
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	for _, d := range tries {
		if _, err := os.Stat(filepath.Join(d, "Makefile")); err == nil {
			return filepath.Abs(d)
		}
	}
	return "", errors.New("cannot build fotadev-c: devicelib/c not found beside the bench's source or above the working directory")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
