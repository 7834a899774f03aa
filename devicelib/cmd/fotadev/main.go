// Command fotadev is a simulated fotagate device: one devicelib.Device whose staging slot
// and state live in files, so a download survives the process and resumes where it stopped.
// Each run is one power-on: the bootloader boots an image left pending, then the device asks
// the gateway for an update, installs it and (with --reboot, the default) boots it.
//
//	fotadev --gateway 127.0.0.1:7683 --key device.json --flash dev.flash --state dev.state
//
// Exit status: 0 installed or up to date, 1 error (refused offers and "retry later"
// included), 2 usage.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
