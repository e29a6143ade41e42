package tokencache

import (
	"context"
	"testing"
	"time"

	"github.com/credproxy/credproxy/exchange"
)

// BenchmarkTokenHot measures Token with a valid token held: the cost every
// proxied request pays. It must not allocate.
func BenchmarkTokenHot(b *testing.B) {
	c := New(&fakeSource{}, Options{Route: "bench"})
	c.cur.Store(c.schedule(exchange.Token{Value: "tok", Expiry: time.Now().Add(time.Hour)}, time.Now()))
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Token(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkTokenHotSerial is the same on one goroutine: the latency one
// request adds.
func BenchmarkTokenHotSerial(b *testing.B) {
	c := New(&fakeSource{}, Options{Route: "bench"})
	c.cur.Store(c.schedule(exchange.Token{Value: "tok", Expiry: time.Now().Add(time.Hour)}, time.Now()))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Token(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func TestTokenHotPathDoesNotAllocate(t *testing.T) {
	c := New(&fakeSource{}, Options{Route: "bench"})
	c.cur.Store(c.schedule(exchange.Token{Value: "tok", Expiry: time.Now().Add(time.Hour)}, time.Now()))
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() { _, _ = c.Token(ctx) }); n != 0 {
		t.Errorf("Token allocates %v times per call, want 0", n)
	}
}
