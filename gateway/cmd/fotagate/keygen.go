package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/fotagate/fotagate/gateway/manifest"
	"github.com/spf13/cobra"
)

func newKeygenCmd() *cobra.Command {
	var (
		out    string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Create a vendor signing key pair (NAME.key and NAME.pub)",
		Long: `Create an Ed25519 vendor key pair for signing firmware manifests.

NAME.key is the private key, written 0600: keep it offline, it signs firmware for every
device. NAME.pub is the public key: configure it on gateways. Existing files are never
overwritten.`,
		Example: "  fotagate keygen --out vendor",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pub, priv, err := manifest.GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			keyPath, pubPath := out+".key", out+".pub"
			if err := manifest.SavePrivateKey(keyPath, priv); err != nil {
				return err
			}
			if err := manifest.SavePublicKey(pubPath, pub); err != nil {
				// The private key was created just now, so removing it loses nothing.
				os.Remove(keyPath)
				return err
			}
			id := manifest.KeyIDOf(pub).String()
			line := strings.TrimSpace(string(manifest.MarshalPublicKey(pub)))
			w := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(w).Encode(struct {
					PrivateKey string `json:"private_key"`
					PublicKey  string `json:"public_key"`
					KeyID      string `json:"key_id"`
					Public     string `json:"public"`
				}{keyPath, pubPath, id, line})
			}
			fmt.Fprintf(w, "Wrote %s (private, mode 0600): keep it offline; it signs firmware for every device.\n", keyPath)
			fmt.Fprintf(w, "Wrote %s (public): configure it on your gateways.\n", pubPath)
			fmt.Fprintf(w, "Key ID %s\n%s\n", id, line)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "vendor", "write the key pair to `NAME`.key and NAME.pub")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
