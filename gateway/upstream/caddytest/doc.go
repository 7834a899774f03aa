// Package caddytest runs Debian's caddy for tests: on a free loopback port (TCP and UDP, for
// HTTP/3), with its home, data and config in the test's directories, tried again when it exits
// before it answers (another process most likely took the port between the check and caddy's
// bind), killed when the test ends, and by the kernel if the test binary dies first
// (Pdeathsig), so no run leaves one behind. Its log is shown when the test fails.
package caddytest
