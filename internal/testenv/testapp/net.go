package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"time"
)

// serve answers every connection on addr with the app's version and a newline (APP_SERVE): a
// service whose clients can tell which container answered.
func serve(addr string) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testapp: serve:", err)
		os.Exit(1)
	}
	answer := []byte(os.Getenv("APP_VERSION") + "\n")
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write(answer)
			_ = c.Close()
		}
	}()
}

// probe connects to addr every interval on a new connection (so each request resolves the name
// again) and prints one line per request: "probe <unix ns> ok <answer> <µs it took>" or
// "probe <unix ns> fail <error>" (APP_PROBE, APP_PROBE_EVERY). A request fails when it gets no
// answer within probeTimeout, name resolution included.
func probe(addr string, every time.Duration) {
	go func() {
		for t := time.Now(); ; t = t.Add(every) {
			time.Sleep(time.Until(t))
			go func(t time.Time) { // requests overlap when one is slow, as a busy client's do
				answer, err := ask(addr)
				if err != nil {
					fmt.Printf("probe %d fail %v\n", t.UnixNano(), err)
					return
				}
				fmt.Printf("probe %d ok %s %d\n", t.UnixNano(), answer, time.Since(t).Microseconds())
			}(t)
		}
	}()
}

// probeTimeout is a client's patience for one request.
const probeTimeout = 3 * time.Second

func ask(addr string) (string, error) {
	deadline := time.Now().Add(probeTimeout)
	c, err := (&net.Dialer{Deadline: deadline}).Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(deadline)
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	if len(line) < 2 {
		return "", fmt.Errorf("empty answer")
	}
	return line[:len(line)-1], nil
}
