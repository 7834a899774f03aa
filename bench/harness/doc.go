// Package harness runs the bench: for each link profile it sets up the link (bench/link), and
// for each peer (bench/peers) it starts the server side in a child process, then runs the
// device side, in another child process, once per chunk size and repetition, one transfer at a
// time, and collects what both sides measured into report.Results. On loopback it first
// measures the physical bound of one core (bound.go); after the profiles it can run the
// concurrency sweep (sweep.go): one gateway child against a fleet child of up to 10,000
// devices at once. Children are this same program re-executed with FOTABENCH_CHILD=1, so the
// server's CPU time and memory are its own and the device's work is not charged to it.
package harness
