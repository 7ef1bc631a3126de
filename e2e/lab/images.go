package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The lab's images are built here from Debian packages, with no registry:
// a busybox image from busybox-static that prints the date every second
// (the seed's opensvc/busybox:date) and a registry image holding Debian's
// docker-registry (the seed's registry:latest). As in the seed, each lives
// in its service's private data root on the service's shared disk, so it
// moves with the service.

const (
	busyboxTag  = "opensvc/busybox:date"
	registryTag = "registry:latest"
)

// The date loop: PID 1 needs the trap, or `docker stop` waits out its
// whole timeout.
const busyboxCmd = `CMD ["/bin/sh","-c","trap 'exit 0' TERM; while true; do date; sleep 1 & wait $!; done"]`

// The seed runs the registry with -e STORAGE_PATH=/registrydata (the old
// registry's variable); Debian's docker-registry reads its storage root
// from REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY, so the command maps one
// onto the other and the seed's run_args work unchanged.
const registryCmd = `CMD ["/bin/sh","-c","exec env REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=${STORAGE_PATH:-/var/lib/docker-registry} docker-registry serve /etc/docker/registry/config.yml"]`

const registryConfig = `version: 0.1
log:
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: /var/lib/docker-registry
  delete:
    enabled: true
http:
  addr: :5000
`

// buildRootfs lays out a root filesystem in dir: busybox with a few
// applets, and for the registry the docker-registry binary, its shared
// libraries and its config.
func buildRootfs(ctx context.Context, dir string, registry bool) error {
	for _, d := range []string{"bin", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := run(ctx, "cp", "/bin/busybox", filepath.Join(dir, "bin", "busybox")); err != nil {
		return fmt.Errorf("copy busybox (install busybox-static): %w", err)
	}
	for _, a := range []string{"sh", "date", "sleep", "echo", "ls", "cat", "env", "true", "wget", "ps"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			return err
		}
	}
	if !registry {
		return nil
	}
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		return fmt.Errorf("no docker-registry binary (install Debian's docker-registry package): %w", err)
	}
	files := []string{bin}
	ldd, err := output(ctx, "ldd", bin)
	if err == nil {
		for _, line := range strings.Split(ldd, "\n") {
			for _, f := range strings.Fields(line) {
				if strings.HasPrefix(f, "/") {
					files = append(files, f)
				}
			}
		}
	} // else: a static binary ("not a dynamic executable")
	for _, f := range files {
		dst := filepath.Join(dir, f)
		if f == bin {
			dst = filepath.Join(dir, "usr", "bin", "docker-registry")
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := run(ctx, "cp", "-L", f, dst); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "var", "lib", "docker-registry"), 0o755); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, "etc", "docker", "registry", "config.yml"), []byte(registryConfig), 0o644)
}

// loadImages imports the service's image into the private data root on
// its docker disk: the disk is mounted on the host for the time of it, and
// a throwaway dockerd (in the switch namespace, on a bridge of its own
// there, never --bridge=none) imports the image and is stopped by pid.
func (l *Lab) loadImage(ctx context.Context, svc, diskRole string) error {
	dev := l.LoopDev(diskRole)
	work := l.Path("loader", svc)
	mnt := filepath.Join(work, "mnt")
	rootfs := filepath.Join(work, "rootfs")
	for _, d := range []string{mnt, rootfs, filepath.Join(work, "exec")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	registry := svc == "registry"
	if err := buildRootfs(ctx, rootfs, registry); err != nil {
		return err
	}
	tarball := filepath.Join(work, "rootfs.tar")
	if err := run(ctx, "tar", "-C", rootfs, "-cf", tarball, "."); err != nil {
		return err
	}
	if err := unix.Mount(dev, mnt, "ext4", 0, ""); err != nil {
		return fmt.Errorf("mount %s on %s: %w", dev, mnt, err)
	}
	defer func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) }()

	sock := filepath.Join(work, "docker.sock")
	cfg := filepath.Join(work, "daemon.json")
	if err := writeFile(cfg, []byte("{}\n"), 0o644); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(work, "dockerd.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command("dockerd", "--data-root", mnt, "--exec-root", filepath.Join(work, "exec"),
		"--pidfile", filepath.Join(work, "docker.pid"), "-H", "unix://"+sock, "--config-file", cfg,
		"--bridge=ld0", "--iptables=false", "--ip-masq=false",
		"--containerd-namespace", "vigil-lab-"+l.Name, "--containerd-plugins-namespace", "vigil-lab-"+l.Name+"-plugins")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := startInNetns(l.NSPath(l.SwitchNS()), cmd); err != nil {
		return fmt.Errorf("start the image loader's dockerd: %w", err)
	}
	l.Loader = procOf(cmd.Process.Pid)
	if err := l.save(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		l.Loader = nil
		_ = l.save()
	}()
	host := "unix://" + sock
	deadline := time.Now().Add(30 * time.Second)
	for run(ctx, "docker", "-H", host, "version") != nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("the image loader's dockerd does not answer (see %s)", logf.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
	tag, change := busyboxTag, []string{"--change", busyboxCmd}
	if registry {
		tag, change = registryTag, []string{"--change", registryCmd, "--change", "EXPOSE 5000"}
	}
	args := append([]string{"-H", host, "import"}, change...)
	if err := run(ctx, "docker", append(args, tarball, tag)...); err != nil {
		return fmt.Errorf("import %s: %w", tag, err)
	}
	return nil
}
