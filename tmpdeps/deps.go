package tmpdeps

import (
	_ "github.com/caddyserver/certmagic"
	_ "github.com/quic-go/quic-go/http3"
	_ "golang.org/x/crypto/chacha20poly1305"
	_ "golang.org/x/crypto/hkdf"
	_ "go.uber.org/zap"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/schollz/progressbar/v3"
	_ "github.com/knadh/koanf/v2"
	_ "github.com/spf13/cobra"
)
