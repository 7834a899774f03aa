// Package deploy holds what it takes to run fotagate in a building: the example
// configuration (fotagate.yaml), the hardened systemd unit (systemd/), the Debian package
// (nfpm.yaml, debian/, built by cmd/fotagate-pkg with debpkg), a container image
// (Containerfile) and a reference upstream for vendors (upstream/). It is the end of the
// project's flow: the gateway's packages run the way these files install them.
//
// The package has no code, only tests that hold those files to what they promise: the
// example configuration loads and starts a gateway, the unit passes systemd-analyze, and
// the reference upstream serves `fotagate publish` output through Debian's caddy. See
// README.md.
package deploy
