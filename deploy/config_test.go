package deploy_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/fotagate/fotagate/gateway/config"
	"github.com/fotagate/fotagate/gateway/daemon"
	"github.com/fotagate/fotagate/gateway/manifest"
	"github.com/fotagate/fotagate/gateway/registry"
)

const exampleConfig = "fotagate.yaml"

// The example's placeholders: values an operator must replace, each on a line marked
// "# PLACEHOLDER". They are valid as they stand, so the file loads, but name nothing real.
const (
	placeholderVendorKey   = "/etc/fotagate/vendor.pub"
	placeholderManifestURL = "https://firmware.example.com/fotagate/esp-relay/manifest.json"
)

// substitute writes the example with each placeholder replaced (each must occur exactly
// once) and returns the new file's path.
func substitute(t *testing.T, with map[string]string) string {
	t.Helper()
	b, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for old, repl := range with {
		if n := strings.Count(text, old); n != 1 {
			t.Fatalf("%s holds %q %d times, want once", exampleConfig, old, n)
		}
		text = strings.Replace(text, old, repl, 1)
	}
	path := filepath.Join(t.TempDir(), "fotagate.yaml")
	if err := os.WriteFile(path, []byte(text), 0o640); err != nil {
		t.Fatal(err)
	}
	return path
}

// vendorKey writes a fresh vendor public key file as `fotagate keygen` would.
func vendorKey(t *testing.T) string {
	t.Helper()
	pub, _, err := manifest.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "vendor.pub")
	if err := manifest.SavePublicKey(path, pub); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestExampleConfigMarksExactlyItsPlaceholders(t *testing.T) {
	b, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	var marked []string
	for i, line := range strings.Split(string(b), "\n") {
		value, _, ok := strings.Cut(line, "# PLACEHOLDER")
		if !ok || strings.TrimSpace(value) == "" || strings.HasPrefix(strings.TrimSpace(value), "#") {
			continue
		}
		switch {
		case strings.Contains(value, placeholderVendorKey):
			marked = append(marked, placeholderVendorKey)
		case strings.Contains(value, placeholderManifestURL):
			marked = append(marked, placeholderManifestURL)
		default:
			t.Errorf("%s:%d is marked PLACEHOLDER but holds no known placeholder: %q", exampleConfig, i+1, line)
		}
	}
	sort.Strings(marked)
	want := []string{placeholderVendorKey, placeholderManifestURL}
	sort.Strings(want)
	if !slices.Equal(marked, want) {
		t.Fatalf("marked placeholders %q, want each of %q once", marked, want)
	}
}

func TestExampleConfigIsValidAsShipped(t *testing.T) {
	if _, err := config.Load(exampleConfig, nil); err != nil {
		t.Fatalf("the example as shipped must load: %v", err)
	}
}

func TestExampleConfigLoadsWithPlaceholdersReplaced(t *testing.T) {
	key := vendorKey(t)
	const url = "https://fw.lan:8443/esp-relay/manifest.json"
	path := substitute(t, map[string]string{placeholderVendorKey: key, placeholderManifestURL: url})
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Upstream.VendorKeys, []string{key}) {
		t.Errorf("vendor_keys %q, want [%s]", cfg.Upstream.VendorKeys, key)
	}
	if want := []config.Class{{Name: "esp-relay", Manifest: url}}; !reflect.DeepEqual(cfg.Classes, want) {
		t.Errorf("classes %+v, want %+v", cfg.Classes, want)
	}
}

// TestExampleConfigRefusesBrokenReplacements: what an operator may get wrong when filling
// in the placeholders is caught at load time, with the field named.
func TestExampleConfigRefusesBrokenReplacements(t *testing.T) {
	for _, tc := range []struct {
		name, old, repl, field string
	}{
		{"plain http manifest", placeholderManifestURL, "http://fw.lan/esp-relay/manifest.json", "classes[0].manifest"},
		{"manifest without host", placeholderManifestURL, "https:///esp-relay/manifest.json", "classes[0].manifest"},
		{"no vendor key", "    - " + placeholderVendorKey + " # PLACEHOLDER: copy your vendor's .pub file here\n", "    []\n", "upstream.vendor_keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := substitute(t, map[string]string{tc.old: tc.repl})
			_, err := config.Load(path, nil)
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("Load: %v, want an error naming %s", err, tc.field)
			}
		})
	}
}

// koanfKeys lists the keys of a config struct as the file spells them; a slice of structs
// contributes "name[].field".
func koanfKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("koanf")
		if tag == "" || tag == "-" {
			continue
		}
		key := prefix + tag
		keys = append(keys, key)
		switch {
		case f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Time{}):
			keys = append(keys, koanfKeys(f.Type, key+".")...)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			keys = append(keys, koanfKeys(f.Type.Elem(), key+"[].")...)
		}
	}
	return keys
}

// yamlKeys lists the keys a YAML document sets, in the same spelling, and those that have no
// comment above or beside them (keys inside list items are documented by their list).
func yamlKeys(doc []byte) (keys, uncommented []string, err error) {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, nil, err
	}
	if len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return nil, nil, fmt.Errorf("not a YAML mapping")
	}
	var walk func(n *yaml.Node, prefix string, inList bool)
	walk = func(n *yaml.Node, prefix string, inList bool) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := prefix + k.Value
			keys = append(keys, key)
			if !inList && k.HeadComment == "" && k.LineComment == "" {
				uncommented = append(uncommented, key)
			}
			switch v.Kind {
			case yaml.MappingNode:
				walk(v, key+".", inList)
			case yaml.SequenceNode:
				for _, item := range v.Content {
					if item.Kind == yaml.MappingNode {
						walk(item, key+"[].", true)
					}
				}
			}
		}
	}
	walk(root.Content[0], "", false)
	return keys, uncommented, nil
}

// checkDocumented returns what is wrong with doc as documentation of every option: options
// missing, keys the gateway does not know (koanf would ignore a misspelt key without a
// word), keys without a comment.
func checkDocumented(doc []byte) []string {
	keys, uncommented, err := yamlKeys(doc)
	if err != nil {
		return []string{err.Error()}
	}
	want := koanfKeys(reflect.TypeOf(config.Config{}), "")
	var problems []string
	for _, k := range want {
		if !slices.Contains(keys, k) {
			problems = append(problems, "option "+k+" is missing")
		}
	}
	for _, k := range keys {
		if !slices.Contains(want, k) {
			problems = append(problems, "key "+k+" is not a gateway option")
		}
	}
	for _, k := range uncommented {
		problems = append(problems, "option "+k+" has no comment")
	}
	return problems
}

func TestExampleConfigDocumentsEveryOption(t *testing.T) {
	b, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range checkDocumented(b) {
		t.Errorf("%s: %s", exampleConfig, p)
	}
}

// TestDocumentationCheckCatches: the check above can fail, for each kind of problem.
func TestDocumentationCheckCatches(t *testing.T) {
	b, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, tc := range []struct{ name, old, repl, want string }{
		{"a misspelt option", "  poll_interval: 5m", "  poll_intervall: 5m", "key upstream.poll_intervall is not a gateway option"},
		{"a missing option", "  fail_burst: 10\n", "", "option devices.fail_burst is missing"},
		{"an undocumented option", "  # How often each class's manifest is checked. A manifest that did not change costs one\n  # small conditional request.\n", "", "option upstream.poll_interval has no comment"},
		{"a misspelt class field", "  - name: esp-relay", "  - nam: esp-relay", "key classes[].nam is not a gateway option"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(doc, tc.old) {
				t.Fatalf("the example no longer holds %q; update this test", tc.old)
			}
			got := checkDocumented([]byte(strings.Replace(doc, tc.old, tc.repl, 1)))
			if !slices.Contains(got, tc.want) {
				t.Fatalf("check found %q, want %q", got, tc.want)
			}
		})
	}
}

// TestExampleConfigShowsTheDefaults: the example claims every value is the default unless
// it says otherwise; this holds it to config.Default as that changes.
func TestExampleConfigShowsTheDefaults(t *testing.T) {
	got, err := config.Load(exampleConfig, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := config.Default()
	want.Registry = filepath.Join(want.StateDir, "devices.json")
	want.Cache.Dir = filepath.Join(want.StateDir, "cache")
	// The deliberate differences: the token file the package creates, and the placeholders.
	if got.Admin.TokenFile != "/etc/fotagate/admin.token" {
		t.Errorf("admin.token_file %q, want the one the package creates", got.Admin.TokenFile)
	}
	got.Admin.TokenFile = want.Admin.TokenFile
	got.Upstream.VendorKeys, got.Classes = want.Upstream.VendorKeys, want.Classes
	// [] in the file is nil in Default.
	if len(got.Upstream.Pins) == 0 && len(want.Upstream.Pins) == 0 {
		got.Upstream.Pins = want.Upstream.Pins
	}
	if len(got.TLS.Names) == 0 && len(want.TLS.Names) == 0 {
		got.TLS.Names = want.TLS.Names
	}
	if !reflect.DeepEqual(*got, want) {
		t.Fatalf("the example's values differ from config.Default():\nexample %+v\ndefault %+v", *got, want)
	}
}

// TestExampleConfigStartsAGateway runs the real gateway assembly on the example, with the
// placeholders filled in and the machine-specific paths moved into the test's directory,
// as `fotagate serve --config ... --state-dir ...` would.
func TestExampleConfigStartsAGateway(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "admin.token")
	if err := os.WriteFile(token, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := substitute(t, map[string]string{
		placeholderVendorKey:        vendorKey(t),
		placeholderManifestURL:      "https://127.0.0.1:1/esp-relay/manifest.json", // nothing answers: polls fail, serving goes on
		"/etc/fotagate/admin.token": token,
	})
	state := filepath.Join(dir, "state")
	cfg := loadWithFlags(t, path, "--state-dir", state, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	if _, err := registry.LoadOrCreate(cfg.Registry, nil); err != nil { // postinst's empty registry
		t.Fatal(err)
	}
	g, err := daemon.New(cfg, zap.NewNop(), daemon.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx, time.Second) }()
	for _, addr := range []net.Addr{g.DeviceAddr(), g.AdminAddr()} {
		c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
		if err != nil {
			t.Errorf("dialing %v: %v", addr, err)
			continue
		}
		c.Close()
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the gateway did not stop within 10s of being asked")
	}
}

// TestUnfilledExampleNamesTheMissingVendorKey: starting the package's configuration without
// filling in the vendor key fails, naming the option and the file.
func TestUnfilledExampleNamesTheMissingVendorKey(t *testing.T) {
	if _, err := os.Stat(placeholderVendorKey); err == nil {
		t.Skipf("%s exists on this machine", placeholderVendorKey)
	}
	state := t.TempDir()
	cfg := loadWithFlags(t, exampleConfig, "--state-dir", state, "--listen", "127.0.0.1:0", "--admin-listen", "")
	if _, err := registry.LoadOrCreate(cfg.Registry, nil); err != nil {
		t.Fatal(err)
	}
	g, err := daemon.New(cfg, zap.NewNop(), daemon.Options{})
	if err == nil {
		g.Run(canceled(), 0) //nolint:errcheck // closes it
		t.Fatal("the gateway started without a vendor key")
	}
	if !strings.Contains(err.Error(), "upstream.vendor_keys") || !strings.Contains(err.Error(), placeholderVendorKey) {
		t.Fatalf("error %q should name upstream.vendor_keys and %s", err, placeholderVendorKey)
	}
}

func loadWithFlags(t *testing.T, path string, args ...string) *config.Config {
	t.Helper()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	config.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, fs)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
