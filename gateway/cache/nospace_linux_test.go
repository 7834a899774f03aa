package cache

import (
	"bytes"
	"errors"
	"syscall"
	"testing"
)

// smallDisk mounts a 1 MiB tmpfs in a temporary directory so that ENOSPC is real, not
// simulated. It needs CAP_SYS_ADMIN (the test machines run as root); elsewhere the test is
// skipped and TestNoSpaceErrorsAreClassified still covers the error mapping.
func smallDisk(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (%v); needs root", err)
	}
	// Cleanups run last-in first-out, so this unmounts before TempDir removes the directory.
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}

func TestFullDiskReturnsErrNoSpaceAndKeepsServing(t *testing.T) {
	dir := smallDisk(t)
	c, _ := open(t, dir, 0)
	old, dold := image(600<<10, 60)
	put(t, c, old, dold)

	big, dbig := image(600<<10, 61)
	p, err := c.Begin(dbig, int64(len(big)))
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	for off := 0; off < len(big) && werr == nil; off += 64 << 10 {
		_, werr = p.Write(big[off:min(off+64<<10, len(big))])
	}
	if !errors.Is(werr, ErrNoSpace) || !errors.Is(werr, syscall.ENOSPC) {
		t.Fatalf("write to a full disk: got %v, want ErrNoSpace wrapping ENOSPC", werr)
	}
	if p.Offset() <= 0 || p.Offset() >= int64(len(big)) {
		t.Fatalf("Offset after ENOSPC = %d, want the bytes that fit", p.Offset())
	}

	// The committed image is untouched and still served while the write is stuck.
	if !c.Has(dold) || !bytes.Equal(readAll(t, c, dold), old) {
		t.Fatal("committed image lost or damaged by a full disk")
	}
	assertInvisible(t, c, dbig)

	if err := p.Abort(); err != nil {
		t.Fatalf("Abort on a full disk: %v", err)
	}
	if !c.Has(dold) {
		t.Fatal("Abort removed a committed image")
	}
	// A resume still has no room; Discard frees the space and a small image fits again.
	p, err = c.Begin(dbig, int64(len(big)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write(big[p.Offset():]); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("resume on a full disk: got %v, want ErrNoSpace", err)
	}
	if err := p.Discard(); err != nil {
		t.Fatal(err)
	}
	small, dsmall := image(100<<10, 62)
	put(t, c, small, dsmall)
	if !bytes.Equal(readAll(t, c, dold), old) {
		t.Fatal("old image damaged")
	}
}
