package secret

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// fmtValue is a credential distinctive enough that any piece of it in an
// output is found.
const fmtValue = "fmt-Raw-V4lue-7f6e5d4c"

// holder keeps a Secret in an unexported field, as tokencache's state
// does: fmt reads such fields by reflection, without calling String.
type holder struct {
	name string
	tok  Secret
}

type nested struct {
	inner holder
	ptr   *holder
	list  []Secret
	byKey map[string]Secret
	iface any
	Pub   Secret
}

// shapes are values that hold the secret in every way a struct can.
func shapes(s Secret) map[string]any {
	h := holder{name: "h", tok: s}
	n := nested{inner: h, ptr: &h, list: []Secret{s, s}, byKey: map[string]Secret{"k": s}, iface: s, Pub: s}
	return map[string]any{
		"secret":               s,
		"pointer to secret":    &s,
		"unexported field":     h,
		"pointer to struct":    &h,
		"nested structs":       n,
		"pointer to nested":    &n,
		"slice of secrets":     []Secret{s},
		"slice of structs":     []holder{h},
		"slice of pointers":    []*holder{&h},
		"map of secrets":       map[string]Secret{"a": s},
		"map of structs":       map[string]holder{"a": h},
		"map keyed by pointer": map[*holder]int{&h: 1},
		"array":                [2]holder{h, h},
		"anonymous struct":     struct{ t Secret }{s},
		"interface field":      struct{ v any }{s},
		"pointer in interface": struct{ v any }{&h},
	}
}

// TestNoFormatRevealsTheValue: every fmt verb, json.Marshal and zap on a
// Secret held in any shape (unexported fields, nested, pointers, slices,
// maps) prints a fingerprint or an address, never the value or a piece
// of it.
func TestNoFormatRevealsTheValue(t *testing.T) {
	s := New(fmtValue)
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T", "%p", "% x", "%#x", "%10.3s", "%U", "%c", "%t", "%o", "%b", "%e", "%08v"}
	for name, v := range shapes(s) {
		for _, verb := range verbs {
			assertNoValue(t, name+" "+verb, fmt.Sprintf(verb, v))
		}
		assertNoValue(t, name+" Sprint", fmt.Sprint(v))
		assertNoValue(t, name+" Sprintln", fmt.Sprintln(v))
		b, err := json.Marshal(v)
		if err == nil {
			assertNoValue(t, name+" json", string(b))
		}
		for enc, line := range zapLines(t, name, v) {
			assertNoValue(t, name+" zap "+enc, line)
		}
	}
}

// zapLines logs v with every zap field constructor that could take it and
// returns the lines from the JSON and console encoders and the observer.
func zapLines(t *testing.T, name string, v any) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, encName := range []string{"json", "console"} {
		var b strings.Builder
		cfg := zap.NewProductionEncoderConfig()
		enc := zapcore.NewJSONEncoder(cfg)
		if encName == "console" {
			enc = zapcore.NewConsoleEncoder(cfg)
		}
		log := zap.New(zapcore.NewCore(enc, zapcore.AddSync(&b), zap.DebugLevel))
		log.Info(name, zap.Any("any", v), zap.Reflect("reflect", v))
		if s, ok := v.(Secret); ok {
			log.Info(name, zap.Stringer("stringer", s), zap.Object("object", s))
		}
		out[encName] = b.String()
	}
	core, logs := observer.New(zap.DebugLevel)
	zap.New(core).Info(name, zap.Any("any", v))
	for _, e := range logs.All() {
		out["observer"] = fmt.Sprint(e.ContextMap())
	}
	return out
}

func assertNoValue(t *testing.T, where, out string) {
	t.Helper()
	for i := 0; i+8 <= len(fmtValue); i++ {
		if strings.Contains(out, fmtValue[i:i+8]) {
			t.Errorf("%s prints %q, a piece of the secret: %s", where, fmtValue[i:i+8], out)
			return
		}
	}
}

// TestEqualAndEmpty: Secrets compare by value through Equal (== would
// compare pointers, so the type is not comparable at all), and the zero
// Secret, New("") and a copy behave alike.
func TestEqualAndEmpty(t *testing.T) {
	a, b := New(fmtValue), New(strings.Clone(fmtValue))
	tcs := []struct {
		desc       string
		x, y       Secret
		equal      bool
		xEmpty     bool
		xRevealed  string
		xPrintedAs string
	}{
		{desc: "same value, different pointers", x: a, y: b, equal: true, xRevealed: fmtValue},
		{desc: "a copy", x: a, y: a, equal: true, xRevealed: fmtValue},
		{desc: "different values", x: a, y: New(fmtValue + "x"), xRevealed: fmtValue},
		{desc: "prefix", x: New(fmtValue[:8]), y: a, xRevealed: fmtValue[:8]},
		{desc: "zero and New(\"\")", x: Secret{}, y: New(""), equal: true, xEmpty: true, xPrintedAs: "empty"},
		{desc: "zero and a value", x: Secret{}, y: a, xEmpty: true, xPrintedAs: "empty"},
	}
	for _, tc := range tcs {
		t.Run(tc.desc, func(t *testing.T) {
			if got := tc.x.Equal(tc.y); got != tc.equal || tc.y.Equal(tc.x) != tc.equal {
				t.Errorf("Equal = %v, want %v both ways", got, tc.equal)
			}
			if tc.x.Empty() != tc.xEmpty || tc.x.Reveal() != tc.xRevealed {
				t.Errorf("Empty %v, Reveal %q", tc.x.Empty(), tc.x.Reveal())
			}
			if tc.xPrintedAs != "" && fmt.Sprint(tc.x) != tc.xPrintedAs {
				t.Errorf("prints %q, want %q", fmt.Sprint(tc.x), tc.xPrintedAs)
			}
			if got := cmp.Equal(tc.x, tc.y); got != tc.equal {
				t.Errorf("cmp.Equal = %v, want %v (through the Equal method)", got, tc.equal)
			}
		})
	}
	if reflect.TypeFor[Secret]().Comparable() {
		t.Error("Secret is comparable with ==, which would compare pointers, not values")
	}
}

// TestJSONNeverFillsASecret: nothing decodes a Secret from JSON. A
// Secret marshals as its fingerprint, so a decoder that accepted it back
// would silently turn a credential into "sha256:..."; decoding is an
// error instead.
func TestJSONNeverFillsASecret(t *testing.T) {
	var v struct{ S Secret }
	if err := json.Unmarshal([]byte(`{"S":"`+fmtValue+`"}`), &v); err == nil {
		t.Errorf("json.Unmarshal filled a Secret (%s) without an error", v.S.Fingerprint())
	}
	if !v.S.Empty() {
		t.Errorf("the Secret holds %s after a failed decode", v.S.Fingerprint())
	}
}
