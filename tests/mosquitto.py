"""A private Mosquitto broker for tests: own config, own port, own persistence, by pid.

    b = Mosquitto(tmpdir, persistence=True).start()
    ... b.port ...
    b.restart()            # same port, same persistence file
    b.kill()               # SIGKILL (no persistence save); b.stop() is SIGTERM (saves)
"""
import os
import shutil
import signal
import socket
import subprocess
import time


def find_mosquitto():
    exe = shutil.which("mosquitto", path=os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/usr/local/sbin")
    if not exe:
        raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
    return exe


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mosquitto:
    def __init__(self, workdir, port=None, allow_anonymous=True, passwords=None, acl=None,
                 persistence=False, extra_conf=""):
        """passwords: {user: password} (hashed with mosquitto_passwd -b) or a ready file path;
        acl: ACL file text; extra_conf: lines appended to the config."""
        self.exe = find_mosquitto()
        self.dir = os.path.abspath(str(workdir))
        os.makedirs(self.dir, exist_ok=True)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.persistence = persistence
        self.proc = None
        self.log_path = os.path.join(self.dir, "mosquitto.log")
        self.conf_path = os.path.join(self.dir, "mosquitto.conf")
        lines = [
            "listener %d 127.0.0.1" % self.port,
            "allow_anonymous %s" % ("true" if allow_anonymous else "false"),
            "set_tcp_nodelay true",
            "log_dest file %s" % self.log_path,
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "persistence %s" % ("true" if persistence else "false"),
        ]
        if os.geteuid() == 0:
            # as root Mosquitto switches to user "mosquitto", which cannot write our log and
            # persistence files: stay who we are
            lines.append("user root")
        if persistence:
            pdir = os.path.join(self.dir, "persist")
            os.makedirs(pdir, exist_ok=True)
            lines += ["persistence_location %s/" % pdir, "persistence_file mosquitto.db",
                      "autosave_interval 1"]
        if passwords:
            if isinstance(passwords, dict):
                path = os.path.join(self.dir, "passwd")
                open(path, "w").close()
                tool = shutil.which("mosquitto_passwd", path=os.environ.get("PATH", "") + ":/usr/bin:/usr/sbin")
                for user, pw in passwords.items():
                    subprocess.run([tool, "-b", path, user, pw], check=True, timeout=10,
                                   capture_output=True)
                passwords = path
            lines.append("password_file %s" % passwords)
        if acl:
            path = os.path.join(self.dir, "acl")
            with open(path, "w") as f:
                f.write(acl)
            lines.append("acl_file %s" % path)
        if extra_conf:
            lines.append(extra_conf)
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, timeout=5.0):
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.proc = subprocess.Popen([self.exe, "-c", self.conf_path], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("mosquitto exited (%s): %s" % (self.proc.returncode, self.log()))
            try:
                socket.create_connection((self.host, self.port), timeout=0.2).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError("mosquitto did not open port %d: %s" % (self.port, self.log()))
                time.sleep(0.01)

    def _signal(self, sig, timeout):
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            try:
                os.kill(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(5)
        self.proc = None

    def stop(self, timeout=5.0):
        """SIGTERM: Mosquitto closes clients and saves persistence."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self):
        self._signal(signal.SIGKILL, 5.0)

    def restart(self, down_for=0.0):
        """Stop (SIGTERM) and start again on the same port with the same persistence."""
        self.stop()
        if down_for:
            time.sleep(down_for)
        return self.start()

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()
