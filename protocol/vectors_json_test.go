package protocol

// The JSON shape of protocol/testdata/vectors/v1.json, shared by the generator (internal
// test) and the replay test (external test) and described in testdata/vectors/README.md.
// Byte strings are lower-case hex.

type vectorFile struct {
	Comment  string           `json:"comment"`
	Sessions []sessionVector  `json:"sessions"`
	Negative []negativeVector `json:"negative"`
}

type sessionVector struct {
	Name              string        `json:"name"`
	PSK               string        `json:"psk"`
	DeviceID          string        `json:"device_id"`
	GatewayID         string        `json:"gateway_id"`
	Class             string        `json:"class"`
	Running           uint32        `json:"running_seq"`
	MaxPayload        int           `json:"max_payload"`
	GatewayMaxPayload int           `json:"gateway_max_payload"`
	BootCounter       uint32        `json:"boot_counter"`
	NdRandom          string        `json:"nd_random"`
	Ng                string        `json:"ng"`
	ResumeOffset      uint32        `json:"resume_offset"`
	ResumeDigest      string        `json:"resume_sha256,omitempty"`
	VendorPublicKey   string        `json:"vendor_public_key,omitempty"`
	Offer             offerVector   `json:"offer"`
	AcceptCode        byte          `json:"accept_code"`
	AcceptOffset      uint32        `json:"accept_offset"`
	Image             string        `json:"image,omitempty"`
	Derived           derivedVector `json:"derived"`
	Wire              wireVector    `json:"wire"`
}

type offerVector struct {
	Status     byte   `json:"status"`
	Seq        uint32 `json:"seq,omitempty"`
	Size       uint32 `json:"size,omitempty"`
	Chunk      uint16 `json:"chunk,omitempty"`
	Class      string `json:"class,omitempty"`
	Digest     string `json:"sha256,omitempty"`
	Signature  string `json:"signature,omitempty"`
	RetryAfter uint16 `json:"retry_after,omitempty"`
}

type derivedVector struct {
	Nd      string `json:"nd"`
	MAC1Key string `json:"mac1_key"`
	TH      string `json:"th"`
	TH2     string `json:"th2"`
	PRK     string `json:"prk"`
	G2DKey  string `json:"g2d_key"`
	G2DIV   string `json:"g2d_iv"`
	D2GKey  string `json:"d2g_key"`
	D2GIV   string `json:"d2g_iv"`
}

type wireVector struct {
	Hello  string   `json:"hello"`
	Offer  string   `json:"offer"`
	Accept string   `json:"accept"`
	Data   []string `json:"data,omitempty"`
	Ack    string   `json:"ack,omitempty"`    // Ack of the whole image, d2g counter 1
	Report string   `json:"report,omitempty"` // Report CodeOK of the whole image, d2g counter 2
}

type negativeVector struct {
	Name    string `json:"name"`
	Session string `json:"session"` // the session whose configuration the role under test uses
	Role    string `json:"role"`    // "device" or "gateway": who must reject
	// Class overrides the session's device class, for the foreign-class case.
	Class string `json:"class,omitempty"`
	// Inbound is every byte the role under test receives, concatenated; the role sends
	// its own messages as in the session and must fail with Expect before the stream ends
	// cleanly (an early end is itself the "truncated" case).
	Inbound string `json:"inbound"`
	Expect  string `json:"expect"`
}
