package secret

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

const value = "s3cr3t-V4lue-xyz"

func TestSecretNeverFormatsItsValue(t *testing.T) {
	s := New(value)
	b, _ := json.Marshal(map[string]any{"s": s})
	outputs := []string{
		fmt.Sprint(s), fmt.Sprintf("%v %s %q %x %X %#v %+v %d", s, s, s, s, s, s, s, s),
		fmt.Sprintf("%v", struct{ S Secret }{s}), fmt.Sprintf("%+v", &struct{ S Secret }{s}),
		string(b),
	}
	core, logs := observer.New(zap.DebugLevel)
	log := zap.New(core)
	log.Info("x", zap.Stringer("a", s), zap.Any("b", s), zap.Object("c", s), zap.Reflect("d", struct{ S Secret }{s}))
	for _, e := range logs.All() {
		outputs = append(outputs, fmt.Sprint(e.ContextMap()))
	}
	for _, o := range outputs {
		if strings.Contains(o, value) {
			t.Errorf("output contains the secret: %s", o)
		}
	}
	if fp := s.Fingerprint(); !strings.HasPrefix(fp, "sha256:") || len(fp) != len("sha256:")+4 {
		t.Errorf("fingerprint %q", fp)
	}
	if s.Reveal() != value {
		t.Error("Reveal lost the value")
	}
	if New("").Fingerprint() != "empty" || (Secret{}).Fingerprint() != "empty" {
		t.Error("empty fingerprint")
	}
}

func TestRefLoad(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	r := Ref{File: file, Var: "CREDPROXY_TOKEN_FILE"}

	_, err := r.Load()
	if err == nil || !strings.Contains(err.Error(), "CREDPROXY_TOKEN_FILE") {
		t.Errorf("missing file: %v", err)
	}
	for _, tc := range []struct{ content, want, wantErr string }{
		{content: value + "\n", want: value},
		{content: "  \n", wantErr: "is empty"},
		{content: strings.Repeat("a", MaxFileSize+1), wantErr: "larger than"},
	} {
		if err := os.WriteFile(file, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := r.Load()
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want %q", err, tc.wantErr)
			}
			continue
		}
		if err != nil || !got.Equal(New(tc.want)) {
			t.Errorf("Load = %v, %v", got, err)
		}
	}

	// A Kubernetes-style rotation: the file is a symlink swapped to a new
	// target; the next Load sees the new value.
	for i, v := range []string{"first-value", "second-value"} {
		target := filepath.Join(dir, fmt.Sprintf("v%d", i))
		if err := os.WriteFile(target, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "link.tmp")
		if err := os.Symlink(target, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "link")); err != nil {
			t.Fatal(err)
		}
		got, err := Ref{File: filepath.Join(dir, "link")}.Load()
		if err != nil || got.Reveal() != v {
			t.Errorf("after swap %d: %v %v", i, got.Reveal(), err)
		}
	}

	if _, err := (Ref{Var: "CREDPROXY_TOKEN"}).Load(); !errors.Is(err, ErrEmpty) {
		t.Errorf("unset: %v", err)
	}
}
