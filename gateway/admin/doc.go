// Package admin is the gateway's operator side. Fleet keeps the state of every device from
// what the device server records (it is the server's Recorder), with the refusals of devices
// and of upstream releases (RecordUpstreamRefusal) in one recent ring; Metrics counts sessions,
// bytes, upstream fetches and cache lookups on a per-gateway Prometheus registry, and Handler
// serves both over an authenticated HTTP API.
//
// It sits beside the flow rather than in it: gateway/server reports into Fleet, upstream and
// cache count through Metrics, and nothing flows back. Everything a package-level variable
// could hold lives in a Fleet or a Metrics, so tests run many gateways in one process.
package admin
