package link

import (
	"fmt"
	"strings"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// TCPProxy is the fallback for TCP peers when namespaces are not available: toxiproxy, as a
// library in this process, relays each connection with a latency toxic of RTT/2 and a
// bandwidth toxic of Rate each way. It ends TCP at the proxy, so the peers' own TCP
// connections see loopback round trips: a stream pays the delay once rather than per window,
// and loss cannot be emulated (toxiproxy has no packet loss; TCP would hide it as delay).
type TCPProxy struct {
	proxy *toxiproxy.Proxy
}

// NewTCPProxy listens on listen (host:port, port 0 for any) and relays to upstream.
func NewTCPProxy(listen, upstream string, p Profile) (*TCPProxy, error) {
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	px := toxiproxy.NewProxy(srv, "fotabench", listen, upstream)
	nop := zerolog.Nop()
	px.Logger = &nop
	if err := px.Start(); err != nil {
		return nil, fmt.Errorf("toxiproxy: %w", err)
	}
	for _, stream := range []string{"upstream", "downstream"} {
		if p.RTT > 0 {
			if err := addToxic(px, fmt.Sprintf(`{"name":"latency_%s","type":"latency","stream":%q,"attributes":{"latency":%d}}`,
				stream, stream, p.RTT.Milliseconds()/2)); err != nil {
				px.Stop()
				return nil, err
			}
		}
		if p.Rate > 0 {
			// toxiproxy's rate is in KB/s of TCP payload (1 KB = 1000 B): headers go free.
			if err := addToxic(px, fmt.Sprintf(`{"name":"bandwidth_%s","type":"bandwidth","stream":%q,"attributes":{"rate":%d}}`,
				stream, stream, max(1, p.Rate/8/1000))); err != nil {
				px.Stop()
				return nil, err
			}
		}
	}
	return &TCPProxy{proxy: px}, nil
}

func addToxic(px *toxiproxy.Proxy, js string) error {
	if _, err := px.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
		return fmt.Errorf("toxiproxy toxic %s: %w", js, err)
	}
	return nil
}

// Addr is the address clients dial.
func (t *TCPProxy) Addr() string { return t.proxy.Listen }

// Close stops the proxy and cuts its connections.
func (t *TCPProxy) Close() error {
	t.proxy.Stop()
	return nil
}
