package report

// Bound is the loopback physical bound of one core, measured in the same run as the cells it
// is compared with: how many image bytes a core could seal and push into a TCP socket per
// second of CPU if nothing else cost anything.
type Bound struct {
	SealMessage int     `json:"seal_message"`  // bytes per Seal call
	SealPerCore float64 `json:"seal_per_core"` // ChaCha20-Poly1305 Seal, bytes per CPU-second
	WriteSize   int     `json:"write_size"`    // bytes per write call
	// TCPPerCore is bare TCP over loopback, bytes per CPU-second of the writing thread, which
	// on loopback also runs the kernel's delivery to the receiving socket: what a server pays
	// to send, as the gateway CPU figures count it.
	TCPPerCore float64 `json:"tcp_per_core"`
	// ReaderCPUShare is the reading thread's CPU over the writer's, for the record.
	ReaderCPUShare float64 `json:"reader_cpu_share"`
	// SealAtChunk is Seal alone at each chunk size of the run, bytes per CPU-second.
	SealAtChunk map[int]float64 `json:"seal_at_chunk,omitempty"`
}

// Combined is the bound: one core sealing every byte and then writing it, 1/(1/seal+1/tcp).
func (b Bound) Combined() float64 { return CombinePerCore(b.SealPerCore, b.TCPPerCore) }

// CombinePerCore is the rate of one core doing two jobs to every byte, each at its own rate
// alone: the times per byte add up. It is 0 when either rate is not positive.
func CombinePerCore(a, b float64) float64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	return 1 / (1/a + 1/b)
}

// BoundFraction is a cell's goodput per server CPU-second (image bytes over the server's CPU
// time) as a fraction of the bound; 0 when either is unknown.
func BoundFraction(s Summary, bound float64) float64 {
	if s.CPUmsPerMiB <= 0 || bound <= 0 {
		return 0
	}
	perCPUSecond := float64(1<<20) * 1000 / s.CPUmsPerMiB
	return perCPUSecond / bound
}
