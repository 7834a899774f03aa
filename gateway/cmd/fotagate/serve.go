package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/fotagate/fotagate/gateway/config"
	"github.com/fotagate/fotagate/gateway/daemon"
)

func newServeCmd() *cobra.Command {
	var path string
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the gateway: poll the upstream, serve devices",
		Long: `serve runs the gateway with the configuration file (default ` + config.DefaultPath + `, if it
exists) and the flags given, which override the file. SIGINT or SIGTERM stop it gracefully:
running transfers get --grace to finish and the rest resume later. SIGHUP reloads the device
registry.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("config") {
				if _, err := os.Stat(config.DefaultPath); errors.Is(err, os.ErrNotExist) {
					path = ""
				}
			}
			cfg, err := config.Load(path, cmd.Flags())
			if err != nil {
				return err
			}
			log, err := newLogger(cfg.Log.Format, cfg.Log.Level)
			if err != nil {
				return err
			}
			defer log.Sync() //nolint:errcheck
			g, err := daemon.New(cfg, log, daemon.Options{})
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			go reloadOnHangup(ctx, g, log)
			return g.Run(ctx, grace)
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", config.DefaultPath, "configuration file (YAML)")
	cmd.Flags().DurationVar(&grace, "grace", 30*time.Second, "time running transfers get to finish at shutdown")
	config.AddFlags(cmd.Flags())
	return cmd
}

func reloadOnHangup(ctx context.Context, g *daemon.Gateway, log *zap.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := g.Reload(); err != nil {
				log.Error("registry reload failed; keeping the devices loaded before", zap.Error(err))
			} else {
				log.Info("registry reloaded")
			}
		}
	}
}
