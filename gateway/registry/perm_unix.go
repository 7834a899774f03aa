//go:build unix

package registry

import (
	"fmt"
	"os"
	"syscall"
)

// fileOwner is who owned the registry file before we rewrote it.
type fileOwner struct{ uid, gid int }

func ownerOf(path string) (*fileOwner, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, nil
	}
	return &fileOwner{uid: int(st.Uid), gid: int(st.Gid)}, nil
}

// apply gives f the recorded owner when it differs from ours (in practice: root editing the
// gateway user's file). Failing is an error: a file the gateway cannot read is worse than
// no edit.
func (o *fileOwner) apply(f *os.File) error {
	if o == nil || o.uid == os.Geteuid() && o.gid == os.Getegid() {
		return nil
	}
	if err := f.Chown(o.uid, o.gid); err != nil {
		return fmt.Errorf("keeping owner %d:%d of the registry: %w", o.uid, o.gid, err)
	}
	return nil
}

// lockFile takes an exclusive advisory lock on path+".lock" (created 0600, left in place),
// so editing processes queue instead of losing each other's changes. The lock is on a
// separate file because the registry itself is replaced by rename on every edit.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("registry: locking %s: %w", f.Name(), err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
