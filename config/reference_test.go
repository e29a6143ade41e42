package config_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/credproxy/credproxy/config"
	"github.com/credproxy/credproxy/config/internal/reference"
)

// TestConfigurationReference: docs/operators/configuration.md is what the
// generator makes of the table of variables today.
func TestConfigurationReference(t *testing.T) {
	got, err := os.ReadFile(filepath.Join("..", filepath.FromSlash(reference.Path)))
	if err != nil {
		t.Fatalf("%v; run `%s` from the repository root", err, reference.Command)
	}
	if want := reference.Markdown(config.Variables()); !bytes.Equal(got, want) {
		t.Errorf("%s is not current with config's table of variables; run `%s` from the repository root", reference.Path, reference.Command)
	}
}
