// Package peers holds the ways the bench moves one firmware image from a gateway to a device,
// one file per peer: fotagate's own protocol served by the real gateway/server, HTTPS over TLS
// 1.3, CoAP Block2 over DTLS 1.2, and plain TCP as the floor. Each peer has a server side that
// runs behind a Meter, which counts every byte and I/O call on the server's connections and the
// process CPU time each session costs, and a client side that plays the device. The harness
// (bench/harness) runs both sides in child processes; the link (bench/link) sits between them.
package peers
