package exchange

import (
	"net/http"

	"github.com/credproxy/credproxy/internal/secret"
)

// call is one HTTP exchange with an identity service.
type call struct {
	op     string
	client *http.Client
	// sent lists the credentials sent, to be scrubbed from anything the
	// service answers before anything else reads it.
	sent secret.Credentials
}

// do sends req and returns the body of a 2xx answer, read with a size cap.
// Any other answer becomes an *Error carrying the service's message.
func (c call) do(req *http.Request) ([]byte, error) {
	a, err := c.doResponse(req)
	return a.body, err
}

// answer is a 2xx answer read with the size cap.
type answer struct {
	status int
	date   string
	body   []byte
}

// doResponse is do for callers that need the status and Date too.
func (c call) doResponse(req *http.Request) (answer, error) {
	client, err := sender(c.op, c.client)
	if err != nil {
		return answer{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, c.transportFailure("", err)
	}
	defer resp.Body.Close()
	body, err := readAnswer(resp.Body)
	if err != nil {
		return answer{}, c.transportFailure("read answer: ", err)
	}
	if len(body) > MaxResponseSize {
		return answer{}, oversized(c.op, resp.StatusCode)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return answer{}, c.serviceError(resp, body)
	}
	return answer{status: resp.StatusCode, date: resp.Header.Get("Date"), body: body}, nil
}
