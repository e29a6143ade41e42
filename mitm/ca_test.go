package mitm

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestLeafReSignedBeforeExpiry(t *testing.T) {
	ca, err := NewCA("t")
	if err != nil {
		t.Fatal(err)
	}
	st := NewLeaves(ca, nil)
	now := time.Now()
	st.now = func() time.Time { return now }
	first, _ := st.Get("api.example.com")
	now = now.Add(leafLifetime - leafRenewal - time.Minute)
	if again, _ := st.Get("api.example.com"); again != first {
		t.Errorf("re-signed too early")
	}
	now = now.Add(2 * time.Minute)
	if again, _ := st.Get("api.example.com"); again == first || st.signed.Load() != 2 {
		t.Errorf("not re-signed within %v of expiry", leafRenewal)
	}
	if err := first.Leaf.CheckSignatureFrom(ca.Certificate()); err != nil {
		t.Error(err)
	}
}

func TestCALoadAndWrite(t *testing.T) {
	ca, err := NewCA("written")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := ca.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteFiles(dir); err == nil {
		t.Error("overwrote an existing CA key")
	}
	loaded, err := LoadCA(dir+"/ca.pem", dir+"/ca-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	if !loaded.Certificate().Equal(ca.Certificate()) {
		t.Error("loaded a different CA")
	}
	other, _ := NewCA("other")
	if _, err := parseCA(ca.CertPEM(), mustKeyPEM(t, other)); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("mismatched key: %v", err)
	}
}

func mustKeyPEM(t *testing.T, ca *CA) []byte {
	dir := t.TempDir()
	if err := ca.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dir + "/ca-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	return b
}
