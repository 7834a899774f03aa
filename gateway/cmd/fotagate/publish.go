package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/fotagate/fotagate/gateway/manifest"
	"github.com/spf13/cobra"
)

func newPublishCmd() *cobra.Command {
	var (
		keyPath, imagePath, out, expires string
		opts                             manifest.PublishOptions
		asJSON                           bool
	)
	cmd := &cobra.Command{
		Use:   "publish",
		Short: "Sign a firmware image and write its manifest for a static HTTPS host",
		Long: `Sign a firmware image for one device class and write, under DIR/CLASS/:
manifest.json, manifest.json.sig and the image as <sha256>.bin (content-addressed, so it
can be served forever). Upload DIR/CLASS/ to any HTTPS host and point gateways at
https://HOST/.../CLASS/manifest.json. With --url the manifest names that URL instead; a plain
file name is copied beside the manifest, anything else must be uploaded by you.
See gateway/manifest/FORMAT.md for the format.`,
		Example: "  fotagate publish --key vendor.key --class esp-relay --seq 42 --version 1.4.2 --image fw.bin --out site",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			exp, err := parseExpiry(expires, now)
			if err != nil {
				return err
			}
			opts.Expires = exp
			key, err := manifest.LoadPrivateKey(keyPath)
			if err != nil {
				return err
			}
			rel, err := manifest.PublishDir(out, imagePath, opts, key)
			if err != nil {
				return err
			}
			return printRelease(cmd, rel, asJSON)
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyPath, "key", "", "vendor private key `FILE` (from fotagate keygen)")
	f.StringVar(&opts.Class, "class", "", "device `CLASS` the image is for")
	f.Uint32Var(&opts.Seq, "seq", 0, "release sequence `N`; must be higher than every earlier release of the class")
	f.StringVar(&opts.Version, "version", "", "human version `STRING`, e.g. 1.4.2")
	f.StringVar(&imagePath, "image", "", "firmware image `FILE`")
	f.StringVar(&opts.URL, "url", "", "image `URL` (https, or relative to the manifest); default <sha256>.bin beside it")
	f.Uint32Var(&opts.MinSeq, "min-seq", 0, "lowest running sequence `N` that may install this image (0: any)")
	f.StringVar(&expires, "expires", "720h", "expiry as a duration from now or an RFC 3339 `TIME`")
	f.StringVar(&out, "out", "", "output `DIR`; files go to DIR/CLASS/")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	for _, name := range []string{"key", "class", "seq", "version", "image", "out"} {
		_ = cmd.MarkFlagRequired(name) // fails only for an unknown flag name
	}
	return cmd
}

// parseExpiry accepts a duration from now ("720h") or an absolute RFC 3339 time.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("--expires %s: must be in the future", s)
		}
		return now.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--expires %q: give a duration like 720h or a time like 2026-01-02T15:04:05Z", s)
	}
	if !t.After(now) {
		return time.Time{}, fmt.Errorf("--expires %s: must be in the future", s)
	}
	return t, nil
}

func printRelease(cmd *cobra.Command, rel *manifest.Release, asJSON bool) error {
	m := rel.Manifest
	w := cmd.OutOrStdout()
	if asJSON {
		return json.NewEncoder(w).Encode(struct {
			Class     string    `json:"class"`
			Version   string    `json:"version"`
			Seq       uint32    `json:"seq"`
			MinSeq    uint32    `json:"min_seq"`
			Size      uint32    `json:"size"`
			SHA256    string    `json:"sha256"`
			URL       string    `json:"url"`
			Expires   time.Time `json:"expires"`
			KeyID     string    `json:"key_id"`
			Manifest  string    `json:"manifest"`
			Signature string    `json:"signature"`
			Image     string    `json:"image,omitempty"`
		}{m.Class, m.Version, m.Seq, m.MinSeq, m.Size, hex.EncodeToString(m.SHA256[:]), m.URL, m.Expires,
			m.KeyID.String(), rel.DocPath, rel.SigPath, rel.ImagePath})
	}
	fmt.Fprintf(w, "Published %s seq %d (version %s): %d bytes, sha256 %x\n", m.Class, m.Seq, m.Version, m.Size, m.SHA256)
	fmt.Fprintf(w, "  manifest   %s\n  signature  %s\n", rel.DocPath, rel.SigPath)
	if rel.ImagePath != "" {
		fmt.Fprintf(w, "  image      %s\n", rel.ImagePath)
	} else {
		fmt.Fprintf(w, "  image      not copied: upload it yourself so it is served at %s\n", m.URL)
	}
	fmt.Fprintf(w, "Signed by key %s; expires %s. Upload the %s directory to your HTTPS host.\n",
		m.KeyID, m.Expires.Format(time.RFC3339), m.Class)
	return nil
}
