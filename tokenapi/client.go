package tokenapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// AskTimeout bounds Ask: a running credproxy on loopback answers at once.
const AskTimeout = 2 * time.Second

// Ask asks the token API at addr (host:port) for route's token. It returns
// the answer, or nil with the reason worth telling the user (empty when
// simply no token API answered: nothing listening, the API off (404) or
// refused (403)).
func Ask(ctx context.Context, addr, route string) (*Response, string) {
	ctx, cancel := context.WithTimeout(ctx, AskTimeout)
	defer cancel()
	u := "http://" + addr + TokenPath + url.PathEscape(route)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, ""
	}
	req.Header.Set("Metadata", "true")
	client := &http.Client{
		// Straight to the admin listener: never through HTTP_PROXY,
		// never following a redirect.
		Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true, ResponseHeaderTimeout: AskTimeout},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, ""
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case err != nil:
		return nil, "reading the token API's answer at " + addr + " failed"
	case resp.StatusCode == http.StatusOK:
		var tr Response
		if json.Unmarshal(body, &tr) != nil || tr.AccessToken == "" {
			return nil, "the token API at " + addr + " gave no token"
		}
		return &tr, ""
	case resp.StatusCode == http.StatusNotFound, resp.StatusCode == http.StatusForbidden:
		return nil, ""
	}
	var e struct{ Error, Detail string }
	_ = json.Unmarshal(body, &e)
	return nil, fmt.Sprintf("the credproxy at %s answered HTTP %d %s %s", addr, resp.StatusCode, e.Error, e.Detail)
}
