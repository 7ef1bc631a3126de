package journal

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func open(t *testing.T, dir string, size int64, files int) *Journal {
	t.Helper()
	j, err := Open(Config{Dir: dir, MaxFileSize: size, MaxFiles: files})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func TestJournal_SurvivesReopenAndContinuesNumbering(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, 0, 0)
	for i := range 3 {
		if _, err := j.Append(Entry{Kind: "start", Service: "web", Message: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	j2 := open(t, dir, 0, 0)
	e, err := j2.Append(Entry{Kind: "stop", Service: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Seq != 4 {
		t.Errorf("seq after reopen = %d, want 4", e.Seq)
	}
	all, _ := j2.Read(Filter{})
	if len(all) != 4 || all[0].Message != "0" || all[3].Kind != "stop" {
		t.Errorf("read back %+v", all)
	}
}

func TestJournal_RotationBoundsTheFilesAndKeepsOrder(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, 300, 2)
	for i := range 50 {
		if _, err := j.Append(Entry{Kind: "monitor", Message: strings.Repeat("x", 40) + fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(names) != 3 {
		t.Errorf("files %v: want the current one and 2 rotated", names)
	}
	for _, n := range names {
		if fi, _ := os.Stat(n); fi.Size() > 300 {
			t.Errorf("%s is %d bytes, over the 300 bound", n, fi.Size())
		}
	}
	all, _ := j.Read(Filter{})
	if len(all) == 0 || all[len(all)-1].Seq != 50 {
		t.Fatalf("newest entry lost: %+v", all)
	}
	for i := 1; i < len(all); i++ {
		if all[i].Seq != all[i-1].Seq+1 {
			t.Fatalf("entries out of order or missing between rotated files: %d then %d", all[i-1].Seq, all[i].Seq)
		}
	}
}

func TestJournal_TornLastLineIsSkipped(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir, 0, 0)
	j.Append(Entry{Kind: "start"})
	j.Close()
	f, _ := os.OpenFile(filepath.Join(dir, current), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"seq":2,"kind":"sto`)
	f.Close()
	j2 := open(t, dir, 0, 0)
	all, _ := j2.Read(Filter{})
	if len(all) != 1 {
		t.Errorf("read %+v, want the one whole entry", all)
	}
}

func TestFilter_SelectsBySinceServiceAndKind(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := Entry{Kind: "start", Service: "web", Time: t0}
	for _, tc := range []struct {
		name string
		f    Filter
		want bool
	}{
		{"empty filter takes all", Filter{}, true},
		{"since before", Filter{Since: t0.Add(-time.Second)}, true},
		{"since after", Filter{Since: t0.Add(time.Second)}, false},
		{"same service", Filter{Service: "web"}, true},
		{"other service", Filter{Service: "db"}, false},
		{"kind listed", Filter{Kinds: []string{"stop", "start"}}, true},
		{"kind not listed", Filter{Kinds: []string{"stop"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.f.Match(e); got != tc.want {
				t.Errorf("Match = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestJournal_FollowersGetNewEntries(t *testing.T) {
	j := open(t, t.TempDir(), 0, 0)
	ch, cancel := j.Subscribe()
	defer cancel()
	j.Append(Entry{Kind: "lost", Node: "n2"})
	e := <-ch
	if e.Kind != "lost" || e.Node != "n2" || e.Seq != 1 {
		t.Errorf("followed %+v", e)
	}
}
