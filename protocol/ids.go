package protocol

import "fmt"

// CheckDeviceID reports whether id is a valid device ID: 1 to MaxIDLen bytes of
// [A-Za-z0-9._-], the first a letter or digit (PROTOCOL.md 3.1). IDs are printable so they
// can appear in logs and file names without escaping ("." and ".." cannot occur); the key,
// never the ID, is the secret.
func CheckDeviceID(id string) error { return checkName("device ID", id, MaxIDLen) }

// CheckGatewayID applies the device-ID rules to a gateway ID.
func CheckGatewayID(id string) error { return checkName("gateway ID", id, MaxIDLen) }

// CheckClass reports whether class is a valid device class: 1 to MaxClassLen bytes of
// [A-Za-z0-9._-], the first a letter or digit.
func CheckClass(class string) error { return checkName("device class", class, MaxClassLen) }

func checkName(what, s string, max int) error {
	if len(s) == 0 || len(s) > max {
		return fmt.Errorf("%w: %s must be 1 to %d bytes, got %d", ErrMalformed, what, max, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return fmt.Errorf("%w: %s %q must start with a letter or digit", ErrMalformed, what, s)
		}
		if !alnum && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("%w: %s %q: byte %d is not one of [A-Za-z0-9._-]", ErrMalformed, what, s, i)
		}
	}
	return nil
}
