#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/seeds/<target>/.

Deterministic (fixed mtimes, owners and order), so running it again changes
nothing; the output is checked in and kept small (a few KB a file). The input
formats are described at the top of each fuzz_targets/<target>.rs.
"""

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

SEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")
# One 512-byte record at the end, not tarfile's 10 KiB: seeds stay small.
tarfile.RECORDSIZE = tarfile.BLOCKSIZE


def write(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def tar(entries, fmt=tarfile.GNU_FORMAT):
    """entries: (name, kind, data-or-link-target, extra) with kind one of
    file, dir, sym, hard, chr, fifo."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, kind, data, *extra in entries:
            i = tarfile.TarInfo(name)
            i.mtime = 1700000000
            i.mode = 0o755 if kind == "dir" else 0o644
            if extra:
                i.mode = extra[0]
            payload = None
            if kind == "file":
                payload = data.encode() if isinstance(data, str) else data
                i.size = len(payload)
            elif kind == "dir":
                i.type = tarfile.DIRTYPE
            elif kind == "sym":
                i.type, i.linkname = tarfile.SYMTYPE, data
            elif kind == "hard":
                i.type, i.linkname = tarfile.LNKTYPE, data
            elif kind == "chr":
                i.type, i.devmajor, i.devminor = tarfile.CHRTYPE, 1, 3
            elif kind == "fifo":
                i.type = tarfile.FIFOTYPE
            t.addfile(i, io.BytesIO(payload) if payload is not None else None)
    return buf.getvalue()


def gz(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


def zst(data):
    return subprocess.run(["zstd", "-q", "-19", "-c"], input=data, stdout=subprocess.PIPE, check=True).stdout


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def js(v):
    return json.dumps(v, separators=(",", ":")).encode()


LAYER = tar([
    ("etc", "dir", None),
    ("etc/hostname", "file", "box\n"),
    ("etc/passwd", "file", "root:x:0:0:root:/root:/bin/sh\n"),
    ("etc/link", "sym", "/etc/hostname"),
    ("etc/hard", "hard", "etc/hostname"),
    ("bin", "dir", None),
    ("bin/sh", "file", "#!\n", 0o4755),
])
UPPER = tar([
    ("etc", "dir", None),
    ("etc/.wh.hostname", "file", ""),
    ("var", "dir", None),
    ("var/.wh..wh..opq", "file", ""),
    ("var/new", "file", "x"),
    ("bin/sh", "file", "#!/bin/new\n"),
])


def unpack():
    write("unpack", "layer.tar", LAYER)
    write("unpack", "whiteouts.tar", UPPER)
    write("unpack", "layer.tar.gz", gz(LAYER))
    write("unpack", "layer.tar.zst", zst(UPPER))
    write("unpack", "pax-long-names.tar", tar([
        ("d" * 120 + "/", "dir", None),
        ("d" * 120 + "/" + "f" * 120, "file", "long"),
        ("l" * 110, "sym", "t" * 150),
    ], fmt=tarfile.PAX_FORMAT))
    write("unpack", "hostile-symlink.tar", tar([
        ("lnk", "sym", "/"),
        ("lnk/etc", "dir", None, 0o777),
        ("up", "sym", "../.."),
        ("up/x", "file", "x"),
    ]))
    write("unpack", "hostile-links.tar", tar([
        ("a", "file", "a"),
        ("h1", "hard", "../../outside"),
        ("h2", "hard", "/etc/passwd"),
        ("h3", "hard", "lnk"),
        ("../b", "file", "b"),
        ("/c", "file", "c"),
        ("dev/null", "chr", None),
        ("p", "fifo", None),
    ]))
    write("unpack", "sparse.tar", sparse_tar())
    write("unpack", "sparse-exabytes.tar", sparse_exabytes_tar())
    write("unpack", "replace.tar", tar([
        ("x", "dir", None, 0o000),
        ("x", "file", "now a file"),
        ("y", "sym", "x"),
        ("y", "dir", None),
        ("z/.wh.", "file", ""),
        ("z/.wh...", "file", ""),
    ]))


def sparse_tar():
    """A GNU sparse file (1 MiB, one byte of data), as `tar -S` writes it."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "holes"), "wb") as f:
            f.seek(512 << 10)
            f.write(b"x")
            f.truncate(1 << 20)
        os.utime(os.path.join(d, "holes"), (1700000000, 1700000000))
        return subprocess.run(["tar", "-C", d, "--sparse", "--format=gnu", "-b1", "--owner=0", "--group=0", "--numeric-owner",
                               "--mtime=@1700000000", "-cf", "-", "holes"], stdout=subprocess.PIPE, check=True).stdout


def sparse_exabytes_tar():
    """GNU sparse files of 2^63-1 bytes, one byte of data each (the sparse map
    in base-256 numbers): they overflowed Stats::bytes where files may be that
    large (tmpfs, as in scripts/fuzz.sh's jail)."""
    def b256(v):
        return b"\x80\0\0\0" + v.to_bytes(8, "big")

    out = b""
    for name in ("a", "b", "c"):
        h = bytearray(512)
        h[0:1] = name.encode()
        h[100:108], h[108:116], h[116:124] = b"0000644\0", b"0000000\0", b"0000000\0"
        h[124:136], h[136:148] = b"00000000001\0", b"14000000000\0"
        h[156], h[257:265] = ord("S"), b"ustar  \0"
        h[386:398], h[398:410] = b256((1 << 63) - 2), b"00000000001\0"
        h[483:495] = b256((1 << 63) - 1)
        h[148:156] = b"        "
        h[148:156] = ("%06o\0 " % sum(h)).encode()
        out += bytes(h) + b"x" + bytes(511)
    return out + bytes(1024)


def docker_save(layers, tags, gzip_layers=False):
    files = []
    diff_ids = []
    names = []
    for i, l in enumerate(layers):
        diff_ids.append(sha(l))
        blob = gz(l) if gzip_layers else l
        names.append(f"l{i}/layer.tar")
        files.append((f"l{i}/", "dir", None))
        files.append((f"l{i}/layer.tar", "file", blob))
    config = js({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
                 "rootfs": {"type": "layers", "diff_ids": diff_ids}})
    cname = hashlib.sha256(config).hexdigest() + ".json"
    files.append((cname, "file", config))
    files.append(("manifest.json", "file", js([{"Config": cname, "RepoTags": tags, "Layers": names}])))
    files.append(("repositories", "file", "{}"))
    return tar(files)


def oci_layout(layers, nested=False):
    blobs = {}

    def blob(data):
        blobs[sha(data)] = data
        return {"digest": sha(data), "size": len(data)}

    config = js({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                 "rootfs": {"type": "layers", "diff_ids": [sha(l) for l in layers]}})
    manifest = js({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "config": dict(mediaType="application/vnd.oci.image.config.v1+json", **blob(config)),
                   "layers": [dict(mediaType="application/vnd.oci.image.layer.v1.tar+gzip", **blob(gz(l))) for l in layers]})
    desc = dict(mediaType="application/vnd.oci.image.manifest.v1+json", **blob(manifest))
    if nested:
        inner = js({"schemaVersion": 2, "manifests": [
            dict(desc, platform={"architecture": "arm64", "os": "linux"}),
            dict(desc, platform={"architecture": "amd64", "os": "linux"})]})
        desc = dict(mediaType="application/vnd.oci.image.index.v1+json", **blob(inner))
    index = js({"schemaVersion": 2, "manifests": [dict(desc, annotations={"io.containerd.image.name": "docker.io/library/fuzz:oci"})]})
    files = [("oci-layout", "file", '{"imageLayoutVersion":"1.0.0"}'), ("index.json", "file", index),
             ("blobs/", "dir", None), ("blobs/sha256/", "dir", None)]
    files += [("blobs/sha256/" + d[len("sha256:"):], "file", data) for d, data in sorted(blobs.items())]
    return tar(files)


def archive():
    write("archive", "docker-save.tar", docker_save([LAYER, UPPER], ["fuzz:1", "fuzz:2"]))
    write("archive", "docker-save-gzip.tar", docker_save([UPPER], ["fuzz:gz"], gzip_layers=True))
    write("archive", "oci-layout.tar", oci_layout([UPPER]))
    write("archive", "oci-nested-index.tar", oci_layout([LAYER], nested=True))


def image_json():
    """Mode byte, then the document; @LAYER@ @CONFIG@ @MANIFEST@ are the
    digests of the harness's own blobs (fuzz_targets/image_json.rs)."""
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "@LAYER@", "size": 1}
    config = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "@CONFIG@", "size": 1}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": config, "layers": [layer]}
    mdesc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "@MANIFEST@", "size": 1}
    write("image_json", "0-manifest.json", b"\x00" + js([{"Config": "config.json", "RepoTags": ["a:1", "b"], "Layers": ["layer.tar"]},
                                                        {"Config": "blobs/sha256/@CONFIG@", "Layers": ["blobs/sha256/@LAYER@"]}]))
    write("image_json", "1-index.json", b"\x01" + js({"schemaVersion": 2, "manifests": [
        dict(mdesc, annotations={"org.opencontainers.image.ref.name": "v1"}),
        dict(mdesc, annotations={"io.containerd.image.name": "x:y"}, platform={"os": "linux", "architecture": "amd64"})]}))
    write("image_json", "2-manifest.json", b"\x02" + js(manifest))
    write("image_json", "3-nested-index.json", b"\x03" + js({"schemaVersion": 2, "manifests": [
        dict(mdesc, platform={"os": "linux", "architecture": "arm64", "variant": "v8"}),
        dict(mdesc, platform={"os": "linux", "architecture": "amd64"})]}))
    write("image_json", "4-config.json", b"\x04" + js({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"User": "1000:1000", "Env": ["PATH=/bin", "A=b=c"], "Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo hi"],
                   "WorkingDir": "/srv", "Labels": {"k": "v"}, "Volumes": {"/data": {}}, "ExposedPorts": {"80/tcp": {}},
                   "StopSignal": "SIGTERM"},
        "rootfs": {"type": "layers", "diff_ids": ["@LAYER@"]},
        "history": [{"created_by": "x", "empty_layer": True}]}))


def cri_log():
    """Formats in fuzz_targets/cri_log.rs."""
    log = (b"2026-01-01T00:00:01.000000001Z stdout F hello\n"
           b"2026-01-01T00:00:02Z stderr P part one \n"
           b"2026-01-01T00:00:02Z stderr F and two\n"
           b"2026-01-01T00:00:03+01:00 stdout F \n"
           b"garbage line\n"
           b"2026-01-01T00:00:04Z stdout P unfinished")
    since = b"2026-01-01T00:00:02Z"
    write("cri_log", "read-since.bin", bytes([0, 40, 0, 255, len(since)]) + since + log)
    write("cri_log", "read-tail-unix.bin", bytes([0, 7, 1, 2, 10]) + b"1767225602" + log)
    write("cri_log", "read-float.bin", bytes([0, 0, 0, 1, 6]) + b"1.5e10" + log)
    write("cri_log", "write.bin", bytes([1, 0, 200, 0, 3, 0, 4, 1, 0x81, 2, 0]) + b"line one\nline two\npartial prompt $ ")
    write("cri_log", "write-long.bin", bytes([1, 1, 0, 0, 1, 7, 2, 0x7f, 0xff]) + b"x" * 2400)
    write("cri_log", "uri.bin", b"\x02file:///var/log/c.log?format=cri&max-size=1024&max-files=3")
    write("cri_log", "uri-binary.bin", b"\x02binary:///usr/bin/logger?a=b&c")


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb(fields):
    """fields: (number, value): str/bytes length-delimited, bool/int varint,
    float fixed64, list of pairs a nested message."""
    import struct
    out = b""
    for num, v in fields:
        if isinstance(v, bool) or isinstance(v, int):
            out += varint(num << 3) + varint(v & 0xFFFFFFFFFFFFFFFF)
        elif isinstance(v, float):
            out += varint(num << 3 | 1) + struct.pack("<d", v)
        else:
            b = v.encode() if isinstance(v, str) else pb(v) if isinstance(v, list) else v
            out += varint(num << 3 | 2) + varint(len(b)) + b
    return out


def create_request():
    """The image pick byte (0 fuzz:plain, 1 fuzz:user, 2 fuzz:empty, else the
    request's), then a CreateContainerRequest (api/proto/rind.proto)."""
    write("create_request", "plain.bin", b"\x00" + pb([(2, "web"), (5, "echo"), (5, "hi")]))
    write("create_request", "user.bin", b"\x01" + pb([
        (2, "/db_1.x-y"), (6, "A=2"), (6, "B"), (7, "/w"), (8, "web"), (9, "host"), (10, True), (12, True),
        (14, "SYS_ADMIN"), (15, "CAP_KILL"), (16, 64 << 20), (17, 1.5), (18, 50),
        (19, [(1, "k"), (2, "v")]), (20, [(1, "/h"), (2, "/c"), (3, True)]), (21, "/run"),
        (22, "host"), (23, "no-new-privileges"), (24, "on-failure:3"), (26, "SIGUSR1"), (27, 5)]))
    write("create_request", "entrypoint.bin", b"\x02" + pb([
        (3, "/bin/sh"), (3, "-c"), (4, True), (5, "x"), (8, "1000:staff"), (13, True), (14, "ALL"),
        (23, "seccomp=unconfined"), (24, "always"), (25, False), (27, -1)]))
    write("create_request", "refused.bin", b"\x00" + pb([
        (2, "-bad"), (8, "nobody"), (14, "NOPE"), (17, -1.0), (22, "bridge"), (24, "sometimes"), (25, True), (26, "SIGFOO")]))
    write("create_request", "unknown-image.bin", b"\xff" + pb([(1, "busybox"), (5, "sh")]))


def api_names():
    """Even first byte: an image reference; odd: a platform."""
    for i, ref in enumerate(["busybox", "docker.io/library/busybox:1.36", "localhost:5000/a/b/c:tag",
                             "quay.io/x/y@sha256:" + "a" * 64, "registry.example.com:443/ns/img:v1@sha256:" + "0" * 64,
                             "Upper:Case", "[::1]:5000/x"]):
        write("api_names", f"ref{i}.txt", b"\x00" + ref.encode())
    for i, p in enumerate(["linux/amd64", "linux/arm64/v8", "", "windows//x"]):
        write("api_names", f"platform{i}.txt", b"\x01" + p.encode())


def runtime_config():
    base = {
        "ociVersion": "1.2.0",
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "box",
        "process": {
            "terminal": False, "user": {"uid": 1000, "gid": 1000, "additionalGids": [5], "umask": 18},
            "args": ["sh"], "env": ["PATH=/bin"], "cwd": "/",
            "capabilities": {"bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL", "CAP_CHOWN"],
                             "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL", "CAP_CHOWN"]},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True, "oomScoreAdj": 100,
            "scheduler": {"policy": "SCHED_DEADLINE", "nice": -5, "priority": 1, "flags": ["SCHED_FLAG_RESET_ON_FORK"],
                          "runtime": 10, "deadline": 20, "period": 30},
            "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4},
        },
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/abs/etc/../../up/x", "type": "bind", "source": "/tmp", "options": ["rbind", "ro", "rslave", "nosuid"]},
            {"destination": "relative", "type": "tmpfs", "source": "tmpfs", "options": ["noexec", "rw", "private", "defaults", "idmap"]},
        ],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}, {"type": "network", "path": "/proc/1/ns/net"},
                           {"type": "user"}, {"type": "cgroup"}, {"type": "time"}],
            "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
            "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
            "cgroupsPath": "../x/../../y",
            "sysctl": {"net.ipv4.ip_forward": "1", "kernel.shmmax": "1"},
            "rootfsPropagation": "rslave",
            "personality": {"domain": "LINUX32"},
            "timeOffsets": {"monotonic": {"secs": 1, "nanosecs": 0}},
            "resources": {
                "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                            {"allow": True, "type": "b", "major": 8, "access": "m"}],
                "memory": {"limit": 67108864, "reservation": 1, "swap": 134217728, "kernel": 1, "swappiness": 60, "disableOOMKiller": True},
                "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "realtimeRuntime": 1, "cpus": "0-1", "mems": "0", "idle": 1, "burst": 10},
                "pids": {"limit": 100},
                "blockIO": {"weight": 500, "leafWeight": 10, "weightDevice": [{"major": 8, "minor": 0, "weight": 100}],
                            "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}]},
                "hugepageLimits": [{"pageSize": "2MB", "limit": 209715200}],
                "network": {"classID": 1, "priorities": [{"name": "eth0", "priority": 1}]},
                "unified": {"memory.high": "max"},
            },
            "seccomp": {
                "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                "flags": ["SECCOMP_FILTER_FLAG_LOG"],
                "syscalls": [
                    {"names": ["read", "write", "nosuchcall"], "action": "SCMP_ACT_ALLOW"},
                    {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                                                                                   {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
                    {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                    {"names": ["ioctl"], "action": "SCMP_ACT_NOTIFY"},
                ],
                "listenerPath": "/run/agent.sock",
            },
            "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"],
            "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0}],
        },
        "hooks": {"prestart": [{"path": "/bin/true", "args": ["true"], "timeout": 5}]},
        "annotations": {"a": "b"},
    }
    write("runtime_config", "full.json", js(base))
    minimal = {"ociVersion": "1.0.2", "root": {"path": "/"}, "process": {"user": {"uid": 0, "gid": 0}, "args": ["true"], "cwd": "/"},
               "linux": {"namespaces": [{"type": "mount"}, {"type": "mount"}], "cgroupsPath": "/abs/path",
                         "resources": {"memory": {"limit": -1, "swap": 0}, "cpu": {"shares": 0, "quota": -1}, "pids": {"limit": 0},
                                       "hugepageLimits": [{"pageSize": "1GB", "limit": 0}]}}}
    write("runtime_config", "minimal.json", js(minimal))
    v2 = {"ociVersion": "1.2.0", "root": {"path": "rootfs"}, "process": {"user": {"uid": 1, "gid": 1}, "args": ["x"], "cwd": "rel"},
          "linux": {"namespaces": [{"type": "pid", "path": "/proc/1/ns/pid"}, {"type": "user", "path": "/proc/1/ns/user"}],
                    "resources": {"memory": {"limit": 1, "swap": 0, "checkBeforeUpdate": True},
                                  "cpu": {"shares": 262145, "period": 0, "quota": 0},
                                  "blockIO": {"weight": 0, "throttleWriteIOPSDevice": [{"major": 0, "minor": 0, "rate": 0}]},
                                  "rdma": {"mlx4_0": {"hcaHandles": 2, "hcaObjects": 3}}},
                    "intelRdt": {"closID": "x"}}}
    write("runtime_config", "refused.json", js(v2))


def main():
    shutil.rmtree(SEEDS, ignore_errors=True)
    for f in (unpack, archive, image_json, cri_log, create_request, runtime_config, api_names):
        f()
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(SEEDS) for f in fs)
    print(f"seeds: {total} bytes in {SEEDS}", file=sys.stderr)


if __name__ == "__main__":
    main()
