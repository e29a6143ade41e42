package proxy

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/credproxy/credproxy/exchange"
	"github.com/credproxy/credproxy/internal/secret"
)

// jsonBody is a JSON document of exactly size bytes (an array of small
// objects, padded), without the token in it: the scan reads every byte
// and replaces nothing, its usual case.
func jsonBody(size int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"data":[`)
	for i := 0; b.Len() < size-64; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"metric":"cpu.usage.user","value":%d.25}`, i, i%100)
	}
	b.WriteString(`],"pad":"`)
	for b.Len() < size-2 {
		b.WriteByte('x')
	}
	b.WriteString(`"}`)
	return b.Bytes()[:size]
}

// BenchmarkReverseScanSize is BenchmarkReverse with a JSON answer of 1 KiB
// and of 1 MiB (Content-Length set, no Content-Encoding, so the body scan
// applies), the scan on and off: what the scan costs per byte of answer.
// The figure to compare is ns/op (and MB/s) between scan=true and
// scan=false of one size.
//
//	go test -run '^$' -bench BenchmarkReverseScanSize -benchmem -count 5 ./proxy/
func BenchmarkReverseScanSize(b *testing.B) {
	for _, size := range []int{1 << 10, 1 << 20} {
		body := jsonBody(size)
		for _, scan := range []bool{true, false} {
			b.Run(fmt.Sprintf("size=%s/scan=%v", sizeName(size), scan), func(b *testing.B) {
				up := benchUpstream(b)
				up.handler = func(w http.ResponseWriter, _ *http.Request) {
					w.Header().Set("Content-Type", "application/json")
					w.Header().Set("Content-Length", strconv.Itoa(len(body)))
					_, _ = w.Write(body)
				}
				route := mustRoute(b, RouteOptions{Name: "bench", Upstream: up.url(b), Header: "Authorization", Prefix: "Bearer",
					Tokens: &fakeTokens{tok: exchange.Token{Value: secret.New("bench-token")}}})
				route.noBodyScan = !scan
				px := newBenchServer(b, NewReverse(route, up.transport(), NewMetrics(prometheus.NewRegistry()), zap.NewNop()))
				b.SetBytes(int64(size))
				benchPath(b, &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4, DisableCompression: true}}, px.URL+"/api/v2/x", "")
			})
		}
	}
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return strconv.Itoa(n>>20) + "MiB"
	}
	return strconv.Itoa(n>>10) + "KiB"
}
