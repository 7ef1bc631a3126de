// Command regclient is the demo's and the failover benchmark's client: it
// pushes a small image to a registry over the Docker Registry HTTP API v2,
// pulls it back checking every digest, and probes a TCP address to time an
// outage. It runs in the lab's client namespace: no docker daemon needed.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

const manifestType = "application/vnd.docker.distribution.manifest.v2+json"

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: regclient push|pull HOST:PORT REPO:TAG [DIGEST] | probe HOST:PORT [--api] | listen [HOST]:PORT")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "push":
		err = push(os.Args[2], os.Args[3])
	case "pull":
		want := ""
		if len(os.Args) > 4 {
			want = os.Args[4]
		}
		err = pull(os.Args[2], os.Args[3], want)
	case "probe":
		err = probe(os.Args[2], len(os.Args) > 3 && os.Args[3] == "--api", 60*time.Second)
	case "listen":
		err = listen(os.Args[2])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "regclient: "+err.Error())
		os.Exit(1)
	}
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

var client = &http.Client{Timeout: 10 * time.Second}

func uploadBlob(base, repo string, blob []byte) (string, error) {
	resp, err := client.Post(base+"/v2/"+repo+"/blobs/uploads/", "application/octet-stream", nil)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("start upload: %s", resp.Status)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = base + loc
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	d := digest(blob)
	req, _ := http.NewRequest(http.MethodPut, loc+sep+"digest="+d, bytes.NewReader(blob))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = client.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("upload blob %s: %s", d, resp.Status)
	}
	return d, nil
}

// push uploads a one-layer image whose layer holds random bytes, and
// prints the manifest digest.
func push(addr, ref string) error {
	repo, tag, _ := strings.Cut(ref, ":")
	base := "http://" + addr
	var layer bytes.Buffer
	gz := gzip.NewWriter(&layer)
	tw := tar.NewWriter(gz)
	payload := make([]byte, 64*1024)
	rand.Read(payload)
	tw.WriteHeader(&tar.Header{Name: "data.bin", Mode: 0o644, Size: int64(len(payload)), ModTime: time.Now()})
	tw.Write(payload)
	tw.Close()
	gz.Close()
	layerDigest, err := uploadBlob(base, repo, layer.Bytes())
	if err != nil {
		return err
	}
	diffID := sha256.New()
	gr, _ := gzip.NewReader(bytes.NewReader(layer.Bytes()))
	io.Copy(diffID, gr)
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64", "os": "linux", "config": map[string]any{},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(diffID.Sum(nil))}},
	})
	configDigest, err := uploadBlob(base, repo, config)
	if err != nil {
		return err
	}
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": manifestType,
		"config": map[string]any{"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config), "digest": configDigest},
		"layers": []any{map[string]any{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": layer.Len(), "digest": layerDigest}},
	})
	req, _ := http.NewRequest(http.MethodPut, base+"/v2/"+repo+"/manifests/"+tag, bytes.NewReader(manifest))
	req.Header.Set("Content-Type", manifestType)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("put manifest: %s", resp.Status)
	}
	fmt.Println(digest(manifest))
	return nil
}

// pull fetches the manifest and every blob it names, checking each digest,
// and the manifest's against want when given.
func pull(addr, ref, want string) error {
	repo, tag, _ := strings.Cut(ref, ":")
	base := "http://" + addr
	req, _ := http.NewRequest(http.MethodGet, base+"/v2/"+repo+"/manifests/"+tag, nil)
	req.Header.Set("Accept", manifestType)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	manifest, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get manifest: %s", resp.Status)
	}
	got := digest(manifest)
	if want != "" && got != want {
		return fmt.Errorf("manifest digest %s, pushed %s", got, want)
	}
	var m struct {
		Config struct{ Digest string }   `json:"config"`
		Layers []struct{ Digest string } `json:"layers"`
	}
	if err := json.Unmarshal(manifest, &m); err != nil {
		return err
	}
	blobs := []string{m.Config.Digest}
	for _, l := range m.Layers {
		blobs = append(blobs, l.Digest)
	}
	for _, d := range blobs {
		resp, err := client.Get(base + "/v2/" + repo + "/blobs/" + d)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || digest(b) != d {
			return fmt.Errorf("blob %s: %s, digest %s", d, resp.Status, digest(b))
		}
	}
	fmt.Println(got)
	return nil
}

// probe connects to addr every 20 ms; once a connection fails it reports
// the outage when one succeeds again: from the last success before the
// failures to the first success after. With api, a success is also timed
// the way a registry client sees it: an HTTP answer to GET /v2/ (a TCP
// accept alone may come from a docker-proxy whose container is not up
// yet), reported on a second line, "api-outage".
func probe(addr string, api bool, max time.Duration) error {
	var lastOK, lastAPI, tcpBack time.Time
	down := false
	hc := &http.Client{Timeout: 200 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	begin := time.Now()
	for time.Since(begin) < max {
		c, err := net.DialTimeout("tcp", addr, 20*time.Millisecond)
		now := time.Now()
		apiOK := false
		if err == nil {
			c.Close()
			if api {
				if resp, err := hc.Get("http://" + addr + "/v2/"); err == nil {
					resp.Body.Close()
					apiOK = resp.StatusCode == http.StatusOK
				}
			}
		}
		switch {
		case err == nil && !down:
			lastOK = now
			if !api || apiOK {
				lastAPI = now
			}
		case err == nil && tcpBack.IsZero():
			tcpBack = now
			fmt.Printf("outage %.3f s (last success %s, back %s)\n", now.Sub(lastOK).Seconds(), clock(lastOK), clock(now))
		case err != nil && !lastOK.IsZero():
			down = true
		}
		if !tcpBack.IsZero() && (!api || apiOK) {
			if api {
				fmt.Printf("api-outage %.3f s (last success %s, back %s)\n", now.Sub(lastAPI).Seconds(), clock(lastAPI), clock(now))
			}
			return nil
		}
		time.Sleep(time.Until(now.Add(20 * time.Millisecond)))
	}
	return errors.New("no outage seen, or it did not end, within the limit")
}

func clock(t time.Time) string { return t.UTC().Format("15:04:05.000") }

// listen accepts connections and closes them: the TCP server that already
// listens on every node in the address-only failover profile.
func listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		c.Close()
	}
}
