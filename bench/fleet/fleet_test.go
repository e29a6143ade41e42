package fleet

import (
	"flag"
	"strings"
	"testing"
	"time"
)

var (
	routesFlag = flag.Int("fleet.routes", 0, "sidecars in the fleet tests (default 1,000; go run ./bench -fleet: 10,000)")
	outFlag    = flag.String("fleet.out", "", "TestFleetFigures writes fleet.json and fleet.svg into this directory (bench/)")
)

func TestSummarize(t *testing.T) {
	ps := make([]int32, 200)
	ps[0] = 50
	for i := 100; i < 170; i++ {
		ps[i] = 2
	}
	ps[120] = 9
	sc := Scenario{OutageAt: 90 * time.Second, OutageFor: 10 * time.Second}
	f := Summarize(sc, Credproxy{}, &Result{PerSecond: ps, Failed: 3,
		Episodes: []Episode{{Slot: 1, From: 10 * time.Second, To: 40 * time.Second}, {Slot: 1, From: 50 * time.Second, To: 51 * time.Second}, {Slot: 2, To: time.Second}}})
	want := Figures{Policy: "credproxy", Exchanges: 50 + 69*2 + 9, Failed: 3, MeanPerSecond: float64(50+69*2+9) / 200, PeakSecond: 50, PeakMinute: 2*59 + 9,
		PeakSecondAfterStart: 9, FailedClosed: 2, FailClosedTime: 32 * time.Second, LongestFailClosed: 30 * time.Second,
		After10s: 20, After60s: 2*59 + 9, PeakSecondAfter: 9}
	if f != want {
		t.Errorf("Summarize:\n got %+v\nwant %+v", f, want)
	}
}

// TestReportRenders: a report renders both tables, the reading and a
// chart of two lines.
func TestReportRenders(t *testing.T) {
	scs := Scenarios(100, 1)
	rep := &Report{Routes: 100, Life: Life, Latency: Latency, Seed: 1}
	for _, sc := range scs {
		rep.Runs = append(rep.Runs, Run{Scenario: sc, Figures: []Figures{{Policy: "credproxy", MeanPerSecond: 1.5, PeakSecond: 100}, {Policy: "wavefront-proxy", PeakSecond: 100}}})
	}
	sc := scs[3]
	for _, p := range Policies() {
		ps := make([]int32, int((sc.OutageAt+sc.OutageFor+45*time.Minute)/time.Second))
		for i := range ps {
			ps[i] = int32(i % 7)
		}
		rep.Chart.add(sc, p, &Result{PerSecond: ps})
	}
	md := rep.Markdown()
	for _, want := range []string{"## Fleet", "### Load on the identity service", "### Identity-service outages", "How to read them",
		"| rollout (all start at once), 6 h | wavefront-proxy | 0.0 | 100 |", "| outage 10 min, from " + clock(sc.OutageAt) + " | credproxy |", "fleet.svg"} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q", want)
		}
	}
	svg := rep.SVG()
	if !strings.HasPrefix(svg, "<svg ") || !strings.HasSuffix(svg, "</svg>\n") || strings.Contains(svg, "NaN") || strings.Count(svg, "<polyline") != 2 {
		t.Errorf("SVG is not a whole chart of two lines")
	}
}
