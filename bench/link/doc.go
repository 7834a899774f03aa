// Package link emulates the network between a device and a gateway for the bench: a named
// Profile (rate, round trip, loss), a Line that delays, paces and drops packets one way, and
// two ways to put Lines on a path. As root, Netns builds two network namespaces joined by TUN
// devices, shapes each direction with the kernel's tbf and carries every IP packet through a
// Line, so TCP and UDP alike meet real delay and real loss. Without root, TCPProxy (toxiproxy's
// latency and bandwidth toxics) and UDPProxy (a Line each way) do it on loopback, less
// faithfully: see bench/README.md.
package link
