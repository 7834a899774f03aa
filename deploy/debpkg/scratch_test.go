package debpkg_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// A scratch root is a directory that dpkg installs into with --root, as if it were a second
// machine: its own /etc (passwd and group files that postinst's adduser edits), its own
// dpkg database, and a /usr that is an overlay of the host's /usr, so the maintainer
// scripts, which dpkg runs chrooted into the scratch root, find sh, adduser and
// deb-systemd-helper, while everything the package writes lands in the overlay's upper
// directory. The overlay and the bind mounts of /dev/null and /dev/urandom live in a
// private mount namespace that ends with each command, so nothing here touches the host's
// file system outside the test's temporary directory.
type scratch struct {
	root, upper, work string
}

// scratchSetup is the start of every command run in the scratch root.
const scratchSetup = `set -eu
mount -t overlay overlay -o "lowerdir=/usr,upperdir=$UPPER,workdir=$WORK" "$R/usr"
mount --bind /dev/null "$R/dev/null"
mount --bind /dev/urandom "$R/dev/urandom"
`

func newScratch(t *testing.T) *scratch {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("installing into a scratch root needs root (a private mount namespace, chroot, chown); the rest of the package checks ran")
	}
	need(t, "unshare", "util-linux")
	need(t, "dpkg", "dpkg")
	need(t, "adduser", "adduser")
	need(t, "deb-systemd-helper", "init-system-helpers")
	if out, err := exec.Command("unshare", "--mount", "--propagation", "private", "true").CombinedOutput(); err != nil {
		t.Skipf("this machine does not allow a private mount namespace (%v: %s); the rest of the package checks ran", err, out)
	}
	// Not t.TempDir: its name comes from the test's, and overlayfs options cannot hold
	// every character a test name can.
	dir, err := os.MkdirTemp("", "fotagate-scratch-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &scratch{filepath.Join(dir, "root"), filepath.Join(dir, "upper"), filepath.Join(dir, "work")}
	for _, d := range []string{s.upper, s.work} {
		mkdir(t, d, 0o755)
	}
	for _, d := range []string{"etc", "usr", "dev", "run", "var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"} {
		mkdir(t, filepath.Join(s.root, d), 0o755)
	}
	mkdir(t, filepath.Join(s.root, "tmp"), os.ModeSticky|0o777)
	// Debian is merged-/usr: /bin, /sbin and /lib are links into /usr.
	for _, l := range []string{"bin", "sbin", "lib", "lib64"} {
		if err := os.Symlink("usr/"+l, filepath.Join(s.root, l)); err != nil {
			t.Fatal(err)
		}
	}
	for name, text := range map[string]string{
		"var/lib/dpkg/status":    "",
		"var/lib/dpkg/available": "",
		"dev/null":               "", // mount points for the bind mounts
		"dev/urandom":            "",
		"etc/passwd":             "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		"etc/group":              "root:x:0:\nnogroup:x:65534:\n",
		"etc/shadow":             "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n",
		"etc/gshadow":            "root:*::\nnogroup:*::\n",
	} {
		writeFile(t, filepath.Join(s.root, name), text, 0o644)
	}
	return s
}

// run runs a shell script in a private mount namespace in which the scratch root's /usr is
// mounted; $R is the scratch root.
func (s *scratch) run(t *testing.T, script string) string {
	t.Helper()
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", scratchSetup+script)
	cmd.Env = []string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "HOME=/root",
		"R=" + s.root, "UPPER=" + s.upper, "WORK=" + s.work,
	}
	cmd.Stdin = nil // a conffile question would read end of file and fail, not hang
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("in the scratch root: %s\n%v\n%s", script, err, out)
	}
	return string(out)
}

// dpkg runs dpkg on the scratch root. --force-depends: its database lists no packages, so
// Depends: adduser is unmet there although the host's adduser is in its /usr.
func (s *scratch) dpkg(t *testing.T, args ...string) string {
	t.Helper()
	return s.run(t, `dpkg --root="$R" --force-depends `+strings.Join(args, " "))
}

// chroot runs a command inside the scratch root as root.
func (s *scratch) chroot(t *testing.T, args ...string) string {
	t.Helper()
	return s.run(t, `chroot "$R" `+strings.Join(args, " "))
}

func (s *scratch) path(p string) string { return filepath.Join(s.root, p) }

// usrPath is where a file the package put under /usr is: in the overlay's upper directory.
func (s *scratch) usrPath(p string) string {
	return filepath.Join(s.upper, strings.TrimPrefix(filepath.Clean(p), "/usr/"))
}

// account is a passwd or group line of the scratch root.
func (s *scratch) account(t *testing.T, file, name string) []string {
	t.Helper()
	f, err := os.Open(s.path("etc/" + file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Split(sc.Text(), ":"); fields[0] == name {
			return fields
		}
	}
	return nil
}

// packageStatus is the Status and Version dpkg records for fotagate ("" if none).
func (s *scratch) packageStatus(t *testing.T) (status, version string) {
	t.Helper()
	b, err := os.ReadFile(s.path("var/lib/dpkg/status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, para := range strings.Split(string(b), "\n\n") {
		if !strings.HasPrefix(para, "Package: fotagate\n") {
			continue
		}
		for _, line := range strings.Split(para, "\n") {
			if v, ok := strings.CutPrefix(line, "Status: "); ok {
				status = v
			}
			if v, ok := strings.CutPrefix(line, "Version: "); ok {
				version = v
			}
		}
	}
	return status, version
}

// owned checks a file's type, mode and owner.
func owned(t *testing.T, path string, mode os.FileMode, uid, gid int) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Error(err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode() != mode || int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("%s: %v %d:%d, want %v %d:%d", path, fi.Mode(), st.Uid, st.Gid, mode, uid, gid)
	}
}

func testScratchInstall(t *testing.T, root, deb, next string) {
	s := newScratch(t)

	// First install.
	out := s.dpkg(t, "-i", deb)
	if !strings.Contains(out, "systemctl enable --now fotagate") {
		t.Errorf("a first install should say how to start the gateway; dpkg said:\n%s", out)
	}
	if st, v := s.packageStatus(t); st != "install ok installed" || v != "1.2.0" {
		t.Fatalf("dpkg records fotagate as %q %q, want installed 1.2.0", st, v)
	}
	if b, err := os.ReadFile(s.path("var/lib/dpkg/info/fotagate.conffiles")); err != nil || string(b) != "/etc/fotagate/fotagate.yaml\n" {
		t.Errorf("dpkg's conffiles for fotagate: %q, %v", b, err)
	}

	user := s.account(t, "passwd", "fotagate")
	group := s.account(t, "group", "fotagate")
	if user == nil || group == nil {
		t.Fatalf("postinst did not create the fotagate user and group: %q %q", user, group)
	}
	uid, _ := strconv.Atoi(user[2])
	gid, _ := strconv.Atoi(group[2])
	if uid == 0 || uid >= 1000 || user[3] != group[2] || user[5] != "/var/lib/fotagate" || user[6] != "/usr/sbin/nologin" {
		t.Errorf("fotagate user %q: want a system user in group fotagate, home /var/lib/fotagate, no login shell", user)
	}

	owned(t, s.usrPath("/usr/bin/fotagate"), 0o755, 0, 0)
	sameFile(t, s.usrPath("/usr/lib/systemd/system/fotagate.service"), filepath.Join(root, "deploy/systemd/fotagate.service"))
	owned(t, s.path("etc/fotagate/fotagate.yaml"), 0o640, 0, gid)
	owned(t, s.path("var/lib/fotagate"), os.ModeDir|0o750, uid, gid)
	owned(t, s.path("var/lib/fotagate/devices.json"), 0o600, uid, gid)
	owned(t, s.path("etc/fotagate/admin.token"), 0o600, uid, gid)
	token, err := os.ReadFile(s.path("etc/fotagate/admin.token"))
	if err != nil || !tokenRE.Match(token) {
		t.Errorf("admin token %q, %v: want 64 hex digits and a newline", token, err)
	}

	// The installed gateway works with what postinst made: the empty registry is one it
	// reads, and root provisioning a device keeps the gateway as the registry's owner.
	if got := s.chroot(t, "/usr/bin/fotagate", "version"); got != "fotagate 1.2.0\n" {
		t.Errorf("installed fotagate version: %q", got)
	}
	if got := s.chroot(t, "/usr/bin/fotagate", "keys", "list"); !strings.Contains(got, "No devices in /var/lib/fotagate/devices.json") {
		t.Errorf("keys list on the fresh registry: %q", got)
	}
	s.chroot(t, "/usr/bin/fotagate", "keys", "add", "hall-1", "--class", "esp-relay")
	owned(t, s.path("var/lib/fotagate/devices.json"), 0o600, uid, gid)

	// fotagate check on the shipped example config: it runs, names what an operator must
	// still do (the vendor key placeholder) with its fix, and says so in its exit status.
	got := s.run(t, `chroot "$R" /usr/bin/fotagate check --offline || echo "exit=$?"`)
	if !strings.Contains(got, "exit=1") || !strings.Contains(got, "vendor key") || !strings.Contains(got, "fix:") {
		t.Errorf("fotagate check on the installed example config:\n%s", got)
	}

	// The installed unit, against the installed binary and the host's systemd units.
	need(t, "systemd-analyze", "systemd")
	if got := s.run(t, `systemd-analyze verify --root="$R" fotagate.service`); got != "" {
		t.Errorf("systemd-analyze verify of the installed unit:\n%s", got)
	}

	// Upgrade: the administrator's edit of the conffile, the group and the state survive.
	conf := s.path("etc/fotagate/fotagate.yaml")
	edited, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	edited = append(edited, "# edited by the administrator\n"...)
	writeFile(t, conf, string(edited), 0o640)
	s.dpkg(t, "-i", next)
	if st, v := s.packageStatus(t); st != "install ok installed" || v != "1.2.1" {
		t.Fatalf("after the upgrade dpkg records %q %q, want installed 1.2.1", st, v)
	}
	if got, _ := os.ReadFile(conf); string(got) != string(edited) {
		t.Error("the upgrade replaced the administrator's configuration")
	}
	owned(t, conf, 0o640, 0, gid)
	if again, _ := os.ReadFile(s.path("etc/fotagate/admin.token")); string(again) != string(token) {
		t.Error("the upgrade replaced the admin token")
	}
	if got := s.chroot(t, "/usr/bin/fotagate", "keys", "list"); !strings.Contains(got, "hall-1") {
		t.Errorf("the upgrade lost the registry: %q", got)
	}

	// Purge: configuration gone, device keys and the user kept.
	s.dpkg(t, "--purge", "fotagate")
	if st, _ := s.packageStatus(t); st == "install ok installed" {
		t.Error("fotagate still installed after purge")
	}
	for _, gone := range []string{"etc/fotagate/fotagate.yaml", "etc/fotagate/admin.token", "etc/fotagate"} {
		if _, err := os.Lstat(s.path(gone)); !os.IsNotExist(err) {
			t.Errorf("/%s still there after purge (%v)", gone, err)
		}
	}
	if _, err := os.Lstat(s.usrPath("/usr/bin/fotagate")); !os.IsNotExist(err) {
		t.Errorf("/usr/bin/fotagate still there after purge (%v)", err)
	}
	owned(t, s.path("var/lib/fotagate/devices.json"), 0o600, uid, gid)
	if s.account(t, "passwd", "fotagate") == nil {
		t.Error("purge removed the fotagate user, which still owns /var/lib/fotagate")
	}
}

func mkdir(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, text string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
}
