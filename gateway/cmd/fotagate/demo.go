package main

import (
	"os"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/fotagate/fotagate/gateway/demo"
)

func newDemoCmd() *cobra.Command {
	var opt demo.Options
	var logLevel string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole flow on this machine: vendor upstream, gateway, devices",
		Long: `demo starts an HTTPS + HTTP/3 vendor upstream with a fresh local CA and a signed image,
the real gateway, and simulated devices that update concurrently over the fotagate protocol
(one is cut mid-transfer and resumes; an intruder with a wrong key is refused). It needs no
setup and leaves nothing behind. Exit status 0 means everything behaved as it must.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opt.Out = cmd.OutOrStdout()
			if logLevel != "off" {
				log, err := newLogger("console", logLevel)
				if err != nil {
					return err
				}
				defer log.Sync() //nolint:errcheck
				opt.Log = log
			}
			var bar *progressbar.ProgressBar
			if term.IsTerminal(int(os.Stderr.Fd())) {
				opt.Progress = func(done, total int64) {
					if bar == nil {
						bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(os.Stderr),
							progressbar.OptionSetDescription("devices receiving"), progressbar.OptionShowBytes(true),
							progressbar.OptionThrottle(100e6), progressbar.OptionClearOnFinish())
					}
					bar.Set64(done) //nolint:errcheck // display only
				}
			}
			_, err := demo.Run(cmd.Context(), opt)
			if bar != nil {
				bar.Finish() //nolint:errcheck
			}
			return err
		},
	}
	cmd.Flags().IntVar(&opt.Devices, "devices", 5, "number of simulated devices (1 to 8 names, more are numbered)")
	cmd.Flags().IntVar(&opt.ImageSize, "image-size", 512<<10, "size of the sample image in bytes")
	cmd.Flags().StringVar(&logLevel, "log-level", "off", "gateway log level shown on stderr: off, debug, info, warn, error")
	return cmd
}
