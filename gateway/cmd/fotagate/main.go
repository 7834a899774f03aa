// Command fotagate is the fotagate gateway: it fetches signed firmware over strictly verified
// HTTPS (HTTP/2 or HTTP/3), caches it and serves it to small devices over fotagate's own
// protocol. Run `fotagate help` for the commands; `fotagate demo` shows the whole flow.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := newRootCmd().Execute(); err != nil {
		if err != errCheckFailed { // check has printed its findings
			fmt.Fprintln(os.Stderr, "fotagate:", err)
		}
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "fotagate",
		Short:         "Secure firmware-over-the-air gateway for ESP8266-class devices",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// One constructor per command, each in its own file.
	root.AddCommand(
		newVersionCmd(),
		newDemoCmd(),
		newServeCmd(),
		newCheckCmd(),
		newCACmd(),
		newKeygenCmd(), newPublishCmd(),
		newKeysCmd(),
	)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the gateway version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "fotagate %s\n", version)
		},
	}
}
