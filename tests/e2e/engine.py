"""The container engine the e2e tests run the project's images with: docker where `docker info`
answers, otherwise buildah (vfs storage, chroot isolation), as `scripts/images.sh` builds them.

Every container runs on the host network, so a server in one is reached from the host and from
the other containers on 127.0.0.1. Steps run through :func:`run_logged`: output to a log file,
the whole process group killed at its time limit.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

BUILDAH = ["buildah", "--storage-driver", "vfs"]


class EngineMissing(RuntimeError):
    """Neither a docker engine nor buildah is usable here."""


@dataclass(frozen=True)
class Step:
    """How one container command ended: its exit code and where its output went."""

    returncode: int
    log: Path

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def detect_engine(requested: str | None = None) -> Engine:
    """``requested`` (docker|buildah, from $ENGINE), else docker if `docker info` answers within
    20 s, else buildah. Raises EngineMissing when none is usable."""
    if requested:
        if requested not in ("docker", "buildah"):
            raise EngineMissing(f"ENGINE={requested!r}: expected docker or buildah")
        if shutil.which(requested) is None:
            raise EngineMissing(f"ENGINE={requested} but `{requested}` is not on PATH")
        if requested == "docker" and not _docker_answers():
            raise EngineMissing("ENGINE=docker but `docker info` fails: no docker engine here")
        return Engine(requested)
    if shutil.which("docker") and _docker_answers():
        return Engine("docker")
    if shutil.which("buildah"):
        return Engine("buildah")
    raise EngineMissing(
        "neither a docker engine nor buildah found (apt-get install -y buildah debootstrap)"
    )


def _docker_answers() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def run_logged(argv: list[str], log: Path, timeout: float) -> Step:
    """Run ``argv`` in its own process group, stdout and stderr into ``log``; past ``timeout``
    seconds kill the whole group (a container's processes included) and return code 124."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            return Step(proc.wait(timeout=timeout), log)
        except BaseException as exc:  # the time limit, Ctrl-C or SIGTERM: leave nothing behind
            kill_group(proc)
            if isinstance(exc, subprocess.TimeoutExpired):
                with open(log, "ab") as tail:
                    tail.write(f"\n[e2e] killed after the {timeout:.0f} s limit\n".encode())
                return Step(124, log)
            raise


def kill_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """TERM the process group of ``proc`` (started with start_new_session), KILL what is left
    after ``grace`` seconds, and reap ``proc``."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 30.0)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # stragglers of an exited leader
    except (ProcessLookupError, PermissionError):
        pass


@dataclass(frozen=True)
class Mount:
    host: Path
    target: str
    read_only: bool = False

    def flag(self) -> str:
        return f"{Path(self.host).resolve()}:{self.target}{':ro' if self.read_only else ''}"


@dataclass(frozen=True)
class Engine:
    name: str  # docker | buildah

    def image_exists(self, image: str) -> bool:
        argv = (
            ["docker", "image", "inspect", image]
            if self.name == "docker"
            else [*BUILDAH, "inspect", "--type", "image", image]
        )
        return subprocess.run(argv, capture_output=True, timeout=60).returncode == 0

    def container(self, image: str, name: str) -> Container:
        """A place to run commands from ``image``: a buildah working container (made by
        :meth:`Container.create`) or a name prefix for `docker run --rm` containers.
        :meth:`Container.remove` cleans up either."""
        return Container(self, image, name)

    def remove_tree(self, path: Path, image: str) -> None:
        """Delete ``path``. Files the images' user (uid 10001) wrote there may not be deletable
        by a non-root host user under docker: those go through a root container."""
        shutil.rmtree(path, ignore_errors=True)
        if path.exists() and self.name == "docker":
            subprocess.run(
                [
                    "docker",
                    "run",
                    "--rm",
                    "--user",
                    "0:0",
                    "--network",
                    "none",
                    "--entrypoint",
                    "find",
                    "-v",
                    f"{path.resolve()}:/purge",
                    image,
                    "/purge",
                    "-mindepth",
                    "1",
                    "-delete",
                ],
                capture_output=True,
                timeout=120,
            )
            shutil.rmtree(path, ignore_errors=True)


@dataclass
class Container:
    engine: Engine
    image: str
    name: str
    created: bool = False
    runs: list[str] = field(default_factory=list)  # docker container names used

    def _inspect(self, template: str) -> list[str]:
        out = _checked(
            [*BUILDAH, "inspect", "--type", "image", "--format", template, self.image], timeout=60
        )
        return [line for line in out.splitlines() if line]

    def create(self) -> None:
        """Make the buildah working container (nothing to do under docker)."""
        if self.engine.name != "buildah":
            return
        self.created = True  # from here on remove() tries, even if `from` fails half-way
        _checked([*BUILDAH, "from", "--pull-never", "--name", self.name, self.image], timeout=600)
        # buildah 1.28 mounts the image's VOLUMEs (/data, /runs) over same-path -v binds on the
        # first run; drop them from the working container so that the binds are what runs see.
        volumes = self._inspect("{{range $k, $_ := .Docker.Config.Volumes}}{{println $k}}{{end}}")
        if volumes:
            drops = [arg for v in volumes for arg in ("--volume", f"{v}-")]
            _checked([*BUILDAH, "config", *drops, self.name], timeout=60)

    def command(
        self, args: list[str], mounts: tuple[Mount, ...] = (), entrypoint: str | None = None
    ) -> list[str]:
        """The argv that runs ``args`` through the image's ENTRYPOINT (or ``entrypoint``) on
        the host network, with ``mounts`` bound in."""
        binds = [arg for m in mounts for arg in ("-v", m.flag())]
        if self.engine.name == "docker":
            run_name = f"{self.name}-{len(self.runs)}"
            self.runs.append(run_name)
            entry = ["--entrypoint", entrypoint] if entrypoint else []
            return [
                "docker",
                "run",
                "--rm",
                "--name",
                run_name,
                "--network",
                "host",
                *entry,
                *binds,
                self.image,
                *args,
            ]
        entry = (
            [entrypoint]
            if entrypoint
            else self._inspect("{{range .Docker.Config.Entrypoint}}{{println .}}{{end}}")
        )
        return [
            *BUILDAH,
            "run",
            "--isolation",
            "chroot",
            "--network",
            "host",
            *binds,
            self.name,
            "--",
            *entry,
            *args,
        ]

    def signal_process(self, group: int, argv_prefix: list[str], sig: int) -> None:
        """Send ``sig`` to the process in this container running ``argv_prefix`` (a command
        started by :meth:`command` in process group ``group``). Under buildah it is a process
        of this host (chroot isolation): signalling `buildah run` itself would SIGKILL it."""
        if self.engine.name == "docker":
            _checked(["docker", "kill", "--signal", str(int(sig)), self.runs[-1]], timeout=60)
            return
        for pid in _pids_in_group(group):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
            except OSError:
                continue
            if (
                Path(argv[0]).name.startswith("python")
                and argv[1 : len(argv_prefix)] == argv_prefix[1:]
            ):
                os.kill(pid, sig)
                return
        raise ProcessLookupError(f"no process {' '.join(argv_prefix)!r} in group {group}")

    def remove(self) -> None:
        """Remove what this container left (docker: its stopped or running containers;
        buildah: the working container). Raises RuntimeError if one is still there."""
        if self.engine.name == "docker":
            for run_name in self.runs:  # `docker rm -f` of a --rm container already gone fails
                subprocess.run(["docker", "rm", "-f", run_name], capture_output=True, timeout=60)
            return
        if not self.created:
            return
        for _ in range(3):  # right after a run, buildah may still hold the container
            subprocess.run([*BUILDAH, "rm", self.name], capture_output=True, timeout=120)
            if (
                subprocess.run(
                    [*BUILDAH, "inspect", "--type", "container", self.name],
                    capture_output=True,
                    timeout=60,
                ).returncode
                != 0
            ):
                self.created = False
                return
            time.sleep(1)
        raise RuntimeError(f"buildah container {self.name} is still there after `buildah rm`")


def _checked(argv: list[str], timeout: float) -> str:
    """stdout of ``argv``; a failure raises RuntimeError with the command and its stderr."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(argv)}` exited {done.returncode}: {done.stderr.strip()[-2000:]}"
        )
    return done.stdout


def _pids_in_group(group: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:  # /proc/PID/stat: "pid (comm) state ppid pgrp ..."; comm may hold spaces
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group:
            pids.append(int(entry.name))
    return sorted(pids)
