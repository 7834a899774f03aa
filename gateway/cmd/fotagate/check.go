package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/fotagate/fotagate/gateway/config"
	"github.com/fotagate/fotagate/gateway/preflight"
)

// errCheckFailed makes the exit status 1 without printing anything more.
var errCheckFailed = errors.New("check found problems")

func newCheckCmd() *cobra.Command {
	var path string
	var opt preflight.Options
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check the configuration, key files, certificates, upstream and manifests",
		Long: `check validates everything the gateway depends on and prints each problem with its fix:
the configuration, the modes of files that hold secrets, vendor keys, listen addresses, the
state directory, certificate expiry, the upstream's reachability and TLS, and each class's
signed manifest. Exit status 0: no failure (warnings allowed); 1: something must be fixed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("config") {
				if _, err := os.Stat(config.DefaultPath); errors.Is(err, os.ErrNotExist) {
					path = ""
				}
			}
			cfg, findings := preflight.Config(path)
			if cfg != nil {
				findings = append(findings, preflight.Run(cmd.Context(), cfg, opt)...)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(findings); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				for _, f := range findings {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", f.Severity, f.Subject, f.Detail)
					if f.Fix != "" {
						fmt.Fprintf(tw, "\t\tfix: %s\n", f.Fix)
					}
				}
				tw.Flush()
			}
			if preflight.Failed(findings) {
				cmd.SilenceErrors = true
				return errCheckFailed
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", config.DefaultPath, "configuration file (YAML)")
	cmd.Flags().BoolVar(&opt.Offline, "offline", false, "do not contact the upstream")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the findings as JSON")
	return cmd
}
