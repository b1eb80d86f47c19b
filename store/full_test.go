package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// fillUntilFull puts profiles of 8 KiB into the store at path until a write fails, and returns
// the error and how many versions were written before it.
func fillUntilFull(path string) (int, error) {
	s, err := Open(path, 0)
	if err != nil {
		return 0, fmt.Errorf("open: %w", err)
	}
	defer s.Close()
	ctx := context.Background()
	for i := 1; i <= 10000; i++ {
		if _, err := s.Put(ctx, "p", bytes.Repeat([]byte{byte(i)}, 8192), PutOptions{Activation: Activate}); err != nil {
			return i - 1, err
		}
	}
	return 10000, errors.New("the disk never filled")
}

// checkAfterFull asserts what a full disk must leave: the error is ErrFull without the file's
// path in its text, and every version written before it is readable, after a reopen too.
func checkAfterFull(t *testing.T, path string, written int, err error) {
	t.Helper()
	if !errors.Is(err, ErrFull) || strings.Contains(err.Error(), filepath.Dir(path)) {
		t.Fatalf("after %d versions: %v, want ErrFull with no path", written, err)
	}
	if written < 2 {
		t.Fatalf("only %d versions fitted before the disk was full: make it larger", written)
	}
	s, err := Open(path, 0)
	if err != nil {
		t.Fatalf("reopen after a full disk: %v", err)
	}
	defer s.Close()
	for v := int64(1); v <= int64(written); v++ {
		r, err := s.Get(context.Background(), "p", v)
		if err != nil || len(r.Data) != 8192 || r.Data[0] != byte(v) {
			t.Fatalf("version %d after the disk was full: %v", v, err)
		}
	}
	if r, err := s.Get(context.Background(), "p", 0); err != nil || r.Version != int64(written) {
		t.Fatalf("active after the disk was full: version %d, %v; want %d", r.Version, err, written)
	}
}

// TestFullDisk: a store on a full disk refuses the write that does not fit with ErrFull and
// keeps every earlier version. Two disks: a real 256 KiB tmpfs, where the machine lets the test
// mount one (root on Linux), and a file-size limit (RLIMIT_FSIZE, which makes writes past it
// fail with EFBIG) in a child process, which needs no privilege.
func TestFullDisk(t *testing.T) {
	t.Run("tmpfs", func(t *testing.T) {
		dir := t.TempDir()
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir).CombinedOutput(); err != nil {
			t.Skipf("cannot mount a tmpfs here (%v: %s); the file-size limit below checks the same", err, out)
		}
		defer exec.Command("umount", dir).Run()
		path := filepath.Join(dir, "plumb.db")
		written, err := fillUntilFull(path)
		checkAfterFull(t, path, written, err)
	})
	t.Run("file size limit", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "plumb.db")
		s, err := Open(path, 0)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		cmd := exec.Command(os.Args[0], "-test.run", "^TestFullDiskChild$")
		cmd.Env = append(os.Environ(), "PLUMB_FULL_DISK_CHILD="+path)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		var written int
		var full bool
		var text string
		for _, line := range strings.Split(string(out), "\n") {
			if rest, ok := strings.CutPrefix(line, "RESULT "); ok {
				fields := strings.SplitN(rest, " ", 3)
				written, _ = strconv.Atoi(fields[0])
				full = fields[1] == "full"
				text = fields[2]
			}
		}
		if !full {
			t.Fatalf("child: not ErrFull after %d versions: %s\n%s", written, text, out)
		}
		checkAfterFull(t, path, written, fmt.Errorf("%w (%s)", ErrFull, text))
	})
}

// TestFullDiskChild is TestFullDisk's child process: with a file-size limit of 192 KiB it fills
// the store named by PLUMB_FULL_DISK_CHILD and prints what happened. Run alone it does nothing.
func TestFullDiskChild(t *testing.T) {
	path := os.Getenv("PLUMB_FULL_DISK_CHILD")
	if path == "" {
		return
	}
	signal.Ignore(syscall.SIGXFSZ) // else the limit kills the process instead of failing the write
	limit := uint64(192 << 10)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: limit, Max: limit}); err != nil {
		t.Fatal(err)
	}
	written, err := fillUntilFull(path)
	kind := "other"
	if errors.Is(err, ErrFull) {
		kind = "full"
	}
	fmt.Printf("RESULT %d %s %v\n", written, kind, err)
}
