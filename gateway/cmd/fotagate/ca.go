package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/fotagate/fotagate/certs/gatewaytls"
	"github.com/fotagate/fotagate/gateway/config"
)

func newCACmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "The gateway's LAN certificate authority (tls.mode: local_ca)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	var path string
	export := &cobra.Command{
		Use:   "export",
		Short: "Print the local CA's root certificate (PEM) for operators' browsers and tools",
		Long: `export prints the root certificate of the gateway's local CA on stdout and its SHA-256
fingerprint on stderr: install the certificate in the browsers and tools that open the
gateway's dashboard and API, and compare the fingerprint with what they show. It reads only
the public certificate; it never creates a root. Run it as the gateway's user or root.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("config") {
				if _, err := os.Stat(config.DefaultPath); errors.Is(err, os.ErrNotExist) {
					path = ""
				}
			}
			cfg, err := config.Load(path, nil)
			if err != nil {
				return err
			}
			if cfg.TLS.Mode != gatewaytls.ModeLocalCA {
				return fmt.Errorf("tls.mode is %q, not %q: there is no local CA to export", cfg.TLS.Mode, gatewaytls.ModeLocalCA)
			}
			var buf bytes.Buffer
			if err := gatewaytls.ExportRoot(cfg.StateDir, &buf); err != nil {
				return err
			}
			if blk, _ := pem.Decode(buf.Bytes()); blk != nil {
				if c, err := x509.ParseCertificate(blk.Bytes); err == nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "%s\nSHA-256 fingerprint %s\n", c.Subject.CommonName, gatewaytls.Fingerprint(c))
				}
			}
			_, err = cmd.OutOrStdout().Write(buf.Bytes())
			return err
		},
	}
	export.Flags().StringVarP(&path, "config", "c", config.DefaultPath, "configuration file (YAML)")
	cmd.AddCommand(export)
	return cmd
}
