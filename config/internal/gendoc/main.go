// Command gendoc writes docs/operators/configuration.md from config's
// table of variables. Run it from anywhere inside the repository:
//
//	go run ./config/internal/gendoc
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/credproxy/credproxy/config"
	"github.com/credproxy/credproxy/config/internal/reference"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
}

func run() error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	path := filepath.Join(root, filepath.FromSlash(reference.Path))
	if err := os.WriteFile(path, reference.Markdown(config.Variables()), 0o644); err != nil {
		return err
	}
	fmt.Println("wrote", reference.Path)
	return nil
}

// moduleRoot is the nearest directory at or above the working directory
// that holds go.mod: go run and go generate start in different places.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
